package bench

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ErrBadSize is returned (wrapped) by ParseSize for text that is not a size.
var ErrBadSize = errors.New("bad size")

// maxSize bounds parsed sizes so arithmetic on them cannot overflow; it is
// far above the 5 TiB S3 object limit.
const maxSize = 1 << 50

var units = []struct {
	suffix string
	mult   float64
}{
	// Longest suffixes first so "KiB" is not read as "B".
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// ParseSize reads a byte count such as "4096", "4KiB", "1.5MiB" or "64MB".
// KiB, MiB, GiB, TiB (and the bare K, M, G, T) are powers of 1024; KB, MB,
// GB, TB are powers of 1000. Units are case-insensitive and may be separated
// from the number by spaces. The result is rounded down to whole bytes.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	if t == "" || strings.ContainsAny(t, "+-eEpPxX_") || strings.EqualFold(t, "inf") || strings.EqualFold(t, "nan") {
		return 0, fmt.Errorf("%w: %q", ErrBadSize, s)
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%w: %q", ErrBadSize, s)
	}
	n := math.Floor(v * mult)
	if n > maxSize {
		return 0, fmt.Errorf("%w: %q is larger than %s", ErrBadSize, s, FormatSize(maxSize))
	}
	return int64(n), nil
}

// FormatSize writes n in the largest binary unit that divides it exactly
// ("4KiB", "64MiB", "1000B"), so ParseSize(FormatSize(n)) == n.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
