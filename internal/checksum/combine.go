package checksum

import "encoding/binary"

// Reflected generator polynomials of the CRCs S3 uses, as the tables
// above are built from.
const (
	polyCRC32     = 0xedb88320
	polyCRC32C    = 0x82f63b78
	polyCRC64NVME = 0x9a6c9329ac4bc9b5
)

// Combinable reports whether a's sums can be combined with Combine: the
// CRCs can, the cryptographic hashes cannot.
func Combinable(a Algorithm) bool {
	return a == CRC32 || a == CRC32C || a == CRC64NVME
}

// Combine returns the sum, in a's raw big-endian form as hash.Sum writes
// it, of the concatenation of two byte strings A and B, from sumA =
// sum(A), sumB = sum(B) and lenB = len(B), without the data. This is how
// the whole-object CRC of a multipart upload follows from the CRCs of its
// parts. ok is false for an algorithm that is not Combinable, for sums of
// the wrong size or for a negative lenB.
func Combine(a Algorithm, sumA, sumB []byte, lenB int64) (sum []byte, ok bool) {
	if !Combinable(a) || len(sumA) != a.Size() || len(sumB) != a.Size() || lenB < 0 {
		return nil, false
	}
	switch a {
	case CRC64NVME:
		c := combine64(polyCRC64NVME, 64, binary.BigEndian.Uint64(sumA), binary.BigEndian.Uint64(sumB), lenB)
		return binary.BigEndian.AppendUint64(nil, c), true
	default:
		poly := uint64(polyCRC32)
		if a == CRC32C {
			poly = polyCRC32C
		}
		c := combine64(poly, 32, uint64(binary.BigEndian.Uint32(sumA)), uint64(binary.BigEndian.Uint32(sumB)), lenB)
		return binary.BigEndian.AppendUint32(nil, uint32(c)), true
	}
}

// gf2Matrix is a linear map on width-bit vectors over GF(2): column i is
// the image of bit i.
type gf2Matrix [64]uint64

func (m *gf2Matrix) times(vec uint64) uint64 {
	var sum uint64
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= m[i]
		}
	}
	return sum
}

// square returns m·m.
func (m *gf2Matrix) square(width int) gf2Matrix {
	var sq gf2Matrix
	for i := 0; i < width; i++ {
		sq[i] = m.times(m[i])
	}
	return sq
}

// combine64 combines two reflected CRCs of the given width whose
// register starts and ends inverted (as CRC-32, CRC-32C and CRC-64/NVME
// do). Appending lenB zero bytes to A moves A's register by a linear map,
// the lenB-th power of the one-zero-byte map, computed by repeated
// squaring in O(width² log lenB); B's register, with the inversions
// cancelling, adds to it.
func combine64(poly uint64, width int, crcA, crcB uint64, lenB int64) uint64 {
	if lenB == 0 {
		return crcA
	}
	// The operator for one zero bit: shift right, and fold in the
	// polynomial when the bit shifted out is set.
	var op gf2Matrix
	op[0] = poly
	for i := 1; i < width; i++ {
		op[i] = 1 << (i - 1)
	}
	// Square up to one zero byte (8 bits).
	op = op.square(width) // 2 bits
	op = op.square(width) // 4 bits
	op = op.square(width) // 8 bits
	for n := uint64(lenB); n != 0; n >>= 1 {
		if n&1 != 0 {
			crcA = op.times(crcA)
		}
		if n > 1 {
			op = op.square(width)
		}
	}
	return crcA ^ crcB
}
