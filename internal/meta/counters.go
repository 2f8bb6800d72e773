package meta

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt is returned for a counter value (see Add) that does not
// decode.
var ErrCorrupt = errors.New("meta: malformed counter value")

// countersVersion starts a counter value: then the number of counters
// and each counter, zig-zag varints.
const countersVersion = 1

// maxCounters bounds the counters of one value.
const maxCounters = 64

// DecodeCounters decodes a counter value written by Adds; nil or empty
// is no counter (all zeros).
func DecodeCounters(b []byte) ([]int64, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[0] != countersVersion {
		return nil, fmt.Errorf("%w: version %d", ErrCorrupt, b[0])
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > maxCounters {
		return nil, fmt.Errorf("%w: count", ErrCorrupt)
	}
	b = b[1+k:]
	out := make([]int64, n)
	for i := range out {
		v, k := binary.Varint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: counter %d", ErrCorrupt, i)
		}
		out[i], b = v, b[k:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(b))
	}
	return out, nil
}

// EncodeCounters encodes counters as a counter value.
func EncodeCounters(c []int64) []byte {
	b := make([]byte, 0, 2+len(c)*4)
	b = append(b, countersVersion)
	b = binary.AppendUvarint(b, uint64(len(c)))
	for _, v := range c {
		b = binary.AppendVarint(b, v)
	}
	return b
}

// AddCounters returns counter value old with delta added, element by
// element; the result has as many counters as the longer of the two.
func AddCounters(old []byte, delta []int64) ([]byte, error) {
	c, err := DecodeCounters(old)
	if err != nil {
		return nil, err
	}
	if len(delta) > maxCounters {
		return nil, fmt.Errorf("%w: %d counters", ErrCorrupt, len(delta))
	}
	if len(delta) > len(c) {
		c = append(c, make([]int64, len(delta)-len(c))...)
	}
	for i, d := range delta {
		c[i] += d
	}
	return EncodeCounters(c), nil
}

// ResolveAdds returns txn with its Adds turned into Puts of the counters'
// new values, read with get (nil: absent), after txn's own Deletes and
// Puts of the same keys. A store calls it where it applies txn, after its
// conditions held, so that concurrent Adds to one counter all count.
func ResolveAdds(txn Txn, get func(key []byte) ([]byte, error)) (Txn, error) {
	if len(txn.Adds) == 0 {
		return txn, nil
	}
	vals := map[string][]byte{}
	var order []string
	for _, a := range txn.Adds {
		k := string(a.Key)
		old, seen := vals[k]
		if !seen {
			var err error
			if old, err = txnValue(&txn, a.Key, get); err != nil {
				return txn, err
			}
			order = append(order, k)
		}
		v, err := AddCounters(old, a.Delta)
		if err != nil {
			return txn, fmt.Errorf("counter %q: %w", a.Key, err)
		}
		vals[k] = v
	}
	out := Txn{Conds: txn.Conds, Deletes: txn.Deletes, Puts: make([]KV, 0, len(txn.Puts)+len(order))}
	for _, kv := range txn.Puts {
		if _, ok := vals[string(kv.Key)]; !ok {
			out.Puts = append(out.Puts, kv)
		}
	}
	for _, k := range order {
		out.Puts = append(out.Puts, KV{Key: []byte(k), Value: vals[k]})
	}
	return out, nil
}

// txnValue is key's value once txn's Deletes and Puts are applied.
func txnValue(txn *Txn, key []byte, get func([]byte) ([]byte, error)) ([]byte, error) {
	for i := len(txn.Puts) - 1; i >= 0; i-- {
		if string(txn.Puts[i].Key) == string(key) {
			return txn.Puts[i].Value, nil
		}
	}
	for _, d := range txn.Deletes {
		if string(d) == string(key) {
			return nil, nil
		}
	}
	return get(key)
}
