package bench

import (
	"errors"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"4096", 4096},
		{"4KiB", 4 << 10},
		{"4kib", 4 << 10},
		{"1MiB", 1 << 20},
		{"64MiB", 64 << 20},
		{"1GiB", 1 << 30},
		{"1.5MiB", 3 << 19},
		{"10 MiB", 10 << 20},
		{"4K", 4 << 10},
		{"4KB", 4000},
		{"2MB", 2_000_000},
		{"100B", 100},
		{" 7 ", 7},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "KiB", "-1", "1e3", "0x10", "inf", "NaN", "4 XiB", "1.2.3MiB", "2000000TiB", "+5"} {
		if got, err := ParseSize(bad); !errors.Is(err, ErrBadSize) {
			t.Errorf("ParseSize(%q) = %d, %v; want ErrBadSize", bad, got, err)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 1000: "1000B", 4096: "4KiB", 64 << 20: "64MiB", 3 << 30: "3GiB", 1<<10 + 1: "1025B"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q; want %q", n, got, want)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"4KiB", "1.5MiB", "64MB", "0", "12 g", "1e9", "-3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if !errors.Is(err, ErrBadSize) {
				t.Fatalf("ParseSize(%q): error %v does not wrap ErrBadSize", s, err)
			}
			return
		}
		if n < 0 || n > maxSize {
			t.Fatalf("ParseSize(%q) = %d, out of range", s, n)
		}
		back, err := ParseSize(FormatSize(n))
		if err != nil || back != n {
			t.Fatalf("round trip of %d via %q gave %d, %v", n, FormatSize(n), back, err)
		}
	})
}
