package objects

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// ValidBucketName reports whether name follows the S3 bucket naming rules.
func ValidBucketName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q: %s", ErrInvalidBucketName, name, why) }
	if len(name) < 3 || len(name) > 63 {
		return bad("length not in 3..63")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return bad("only lower-case letters, digits, '.' and '-' are allowed")
		}
	}
	alnum := func(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
	if !alnum(name[0]) || !alnum(name[len(name)-1]) {
		return bad("must start and end with a letter or digit")
	}
	if strings.Contains(name, "..") {
		return bad("adjacent periods")
	}
	if _, err := netip.ParseAddr(name); err == nil {
		return bad("formatted as an IP address")
	}
	if strings.HasPrefix(name, "xn--") || strings.HasPrefix(name, "sthree-") {
		return bad("reserved prefix")
	}
	if strings.HasSuffix(name, "-s3alias") || strings.HasSuffix(name, "--ol-s3") {
		return bad("reserved suffix")
	}
	return nil
}

// ValidKey reports whether key is a usable object key: 1..1024 bytes of
// UTF-8 without NUL. Keys are metadata only; they never name files.
func ValidKey(key string) error {
	switch {
	case len(key) == 0:
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > 1024:
		return fmt.Errorf("%w: %d bytes, more than 1024", ErrInvalidKey, len(key))
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	case strings.IndexByte(key, 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidKey)
	}
	return nil
}
