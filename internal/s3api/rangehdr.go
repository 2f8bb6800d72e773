package s3api

import (
	"errors"
	"strings"

	"github.com/redoubt-io/redoubt/internal/objects"
)

var (
	// errRangeIgnored marks a Range header that is not a single byte
	// range; as in S3 and RFC 9110 the whole object is served.
	errRangeIgnored = errors.New("range header ignored")
	// errRangeUnsatisfiable marks a syntactically valid range that no
	// object can satisfy ("bytes=-0").
	errRangeUnsatisfiable = errors.New("range not satisfiable")
)

// parseRange parses a Range header of one byte range: "bytes=a-b",
// "bytes=a-" or "bytes=-n". Whether the range fits the object is decided
// by the object layer, which knows the size.
func parseRange(h string) (objects.Range, error) {
	spec, ok := strings.CutPrefix(strings.TrimSpace(h), "bytes=")
	if !ok {
		return objects.Range{}, errRangeIgnored
	}
	// Blanks inside the range ("bytes= -1", "bytes=0 -1") make it
	// malformed, and S3 then serves the whole object rather than guess.
	if strings.IndexByte(spec, ',') >= 0 || strings.ContainsAny(spec, " \t") {
		return objects.Range{}, errRangeIgnored
	}
	first, last, ok := strings.Cut(spec, "-")
	if !ok {
		return objects.Range{}, errRangeIgnored
	}
	if first == "" {
		n, ok := parseDigits(last)
		if !ok {
			return objects.Range{}, errRangeIgnored
		}
		if n == 0 {
			return objects.Range{}, errRangeUnsatisfiable
		}
		return objects.Range{Set: true, Suffix: n, End: -1}, nil
	}
	start, ok := parseDigits(first)
	if !ok {
		return objects.Range{}, errRangeIgnored
	}
	if last == "" {
		return objects.Range{Set: true, Start: start, End: -1}, nil
	}
	end, ok := parseDigits(last)
	if !ok || end < start {
		return objects.Range{}, errRangeIgnored
	}
	return objects.Range{Set: true, Start: start, End: end}, nil
}

// parseDigits parses a non-empty decimal number without sign that fits in
// an int64.
func parseDigits(s string) (int64, bool) {
	if s == "" || len(s) > 19 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
