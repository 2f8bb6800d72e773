package lincheck

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
)

// sameBut reports whether a and b are the same state but for the
// operations of unknown outcome they applied.
func sameBut(a, b state) bool {
	return a.known == b.known && a.exists == b.exists && a.versioning == b.versioning &&
		a.since == b.since && slices.Equal(a.versions, b.versions) && slices.Equal(a.changes, b.changes)
}

// hash is a state's hash, the operations it applied aside.
func hash(s state) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	var b [8]byte
	num := func(n int64) {
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
	}
	str := func(s string) { // its length first, so that "ab", "c" and "a", "bc" differ
		num(int64(len(s)))
		h.WriteString(s)
	}
	flag := func(f bool) {
		if f {
			h.WriteByte(1)
		} else {
			h.WriteByte(0)
		}
	}
	flag(s.known)
	flag(s.exists)
	str(s.versioning)
	num(int64(s.since))
	num(int64(len(s.changes)))
	for _, r := range s.changes {
		num(r)
	}
	for _, v := range s.versions {
		str(v.id)
		str(v.value)
		flag(v.null)
		num(int64(v.age))
	}
	return h.Sum64()
}

// seed is the seed of every hash of a state: hashes are compared within
// one process only.
var seed = maphash.MakeSeed()

// describeState shows a state as "Enabled: v7@<id>, marker@? (1 changes
// ago), v3@null (2 changes ago)": the versioning state, then each version,
// newest first, with its ID ("?" while unknown) and the configuration
// changes made since it was written, where the model counts them.
func describeState(s state) string {
	switch {
	case !s.known:
		return "initial"
	case !s.exists:
		return "no bucket"
	}
	var b strings.Builder
	st := s.versioning
	if st == Unversioned {
		st = "Unversioned"
	}
	fmt.Fprintf(&b, "%s", st)
	for i, v := range s.versions {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + describeVersion(v.value, versionName(v)))
		if v.age > 0 {
			fmt.Fprintf(&b, " (%d changes ago)", v.age)
		}
	}
	return b.String()
}

// describe shows the operations of unknown outcome applied names, as
// " (after put b/k v7 -> ?, delete-bucket b -> ?)", or "" for none.
func (u *unknowns) describe(applied uint64) string {
	if u == nil || applied == 0 {
		return ""
	}
	var ds []string
	for i, in := range u.ops {
		if applied&(1<<i) != 0 {
			d := describeOperation(in, Output{Unknown: true})
			ds = append(ds, strings.TrimSuffix(d, fmt.Sprintf(" (node %d)", in.Node)))
		}
	}
	return " (after " + strings.Join(ds, ", ") + ")"
}

func versionName(v version) string {
	switch {
	case v.null:
		return NullID
	case v.id == "":
		return "?"
	}
	return v.id
}

func describeVersion(value, id string) string {
	if value == "" {
		value = "marker"
	}
	if id == "" {
		return value
	}
	return value + "@" + id
}

// describeOperation shows a request and its answer as, for example,
// "put b/k v7 -> 0000018c2f3a00000001", "get b/k?versionId=null ->
// NoSuchVersion", or "list b/p* -> k absent".
func describeOperation(in Input, out Output) string {
	target := in.Key
	if in.Bucket != "" {
		target = in.Bucket + "/" + in.Key
	}
	if in.VersionID != "" {
		target += "?versionId=" + in.VersionID
	}
	req := in.Op + " " + target
	switch in.Op {
	case Put, Create:
		req += " " + in.Value
		if in.IfMatch != "" {
			req += " if-match " + in.IfMatch
		}
	case List, ListVersions:
		req = in.Op + " " + in.Bucket + "/" + in.Prefix + "*"
	case CreateBucket, DeleteBucket, HeadBucket, GetVersioning:
		req = in.Op + " " + in.Bucket
	case SetVersioning:
		req = in.Op + " " + in.Bucket + " " + in.Versioning
	}
	switch {
	case in.window == 1:
		req += " (overlapping a configuration change)"
	case in.window > 1:
		req += fmt.Sprintf(" (overlapping %d configuration changes)", in.window)
	case in.Straddles:
		req += " (overlapping a configuration change)"
	}

	var ans string
	switch {
	case out.Unknown:
		ans = "?"
	case out.Err != "":
		ans = out.Err
	case in.Op == Get:
		ans = describeVersion(out.Value, out.VersionID)
	case in.Op == Put || in.Op == Create:
		ans = "ok"
		if out.VersionID != "" {
			ans += " " + out.VersionID
		}
	case in.Op == Delete:
		ans = "ok"
		if out.DeleteMarker {
			ans += " marker"
		}
		if out.VersionID != "" && in.VersionID == "" {
			ans += " " + out.VersionID
		}
	case (in.Op == List || in.Op == ListVersions) && in.Key == "" && out.Objects == nil && out.Versions == nil:
		ans = "ok" // in the bucket's own partition, which sees no key
	case in.Op == List && in.Key != "":
		ans = in.Key + " absent"
		if len(out.Objects) > 0 {
			ans = in.Key + " = " + out.Objects[0].Value
		}
	case in.Op == List:
		var es []string
		for _, o := range out.Objects {
			es = append(es, o.Key+" = "+o.Value)
		}
		ans = "[" + strings.Join(es, ", ") + "]"
	case in.Op == ListVersions:
		var es []string
		for _, v := range out.Versions {
			e := describeVersion(v.Value, v.VersionID)
			if in.Key == "" {
				e = v.Key + " " + e
			}
			es = append(es, e)
		}
		ans = "[" + strings.Join(es, ", ") + "]"
		if in.Key != "" {
			ans = in.Key + " " + ans
		}
	case in.Op == GetVersioning:
		ans = out.Versioning
		if ans == Unversioned {
			ans = "Unversioned"
		}
	default:
		ans = "ok"
	}
	return fmt.Sprintf("%s -> %s (node %d)", req, ans, in.Node)
}

// Describe shows a request and its answer as the visualization does, for a
// harness's own messages.
func Describe(in Input, out Output) string { return describeOperation(in, out) }
