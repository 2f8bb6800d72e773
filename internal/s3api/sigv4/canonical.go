package sigv4

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// kv is one decoded query parameter.
type kv struct{ key, value string }

// parseQuery splits a raw query into decoded pairs, keeping every pair (even
// those url.ParseQuery would drop) so that the canonical query covers all of
// what the client sent. '+' decodes to a space, as clients encode it.
func parseQuery(raw string) []kv {
	if raw == "" {
		return nil
	}
	var out []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		out = append(out, kv{unescape(k), unescape(v)})
	}
	return out
}

// unescape decodes %XX and '+'; a '%' not followed by two hex digits stays
// as it is.
func unescape(s string) string {
	if !strings.ContainsAny(s, "%+") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && ishex(s[i+1]) && ishex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

const upperhex = "0123456789ABCDEF"

// uriEncode percent-encodes every byte outside the unreserved set, with
// upper-case hex, as SigV4 requires; keepSlash leaves '/' alone.
func uriEncode(s string, keepSlash bool) string {
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || keepSlash && c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperhex[c>>4])
		b.WriteByte(upperhex[c&15])
	}
	return b.String()
}

// canonicalQuery encodes each name and value, sorts by name then value
// (after encoding, as the specification says) and joins them. Presigned
// requests leave out X-Amz-Signature.
func canonicalQuery(query []kv, presigned bool) string {
	enc := make([]kv, 0, len(query))
	for _, p := range query {
		if presigned && p.key == "X-Amz-Signature" {
			continue
		}
		enc = append(enc, kv{uriEncode(p.key, false), uriEncode(p.value, false)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].key != enc[j].key {
			return enc[i].key < enc[j].key
		}
		return enc[i].value < enc[j].value
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

// rawPath is the path as the client sent it.
func rawPath(r *http.Request) string {
	if ru := r.RequestURI; strings.HasPrefix(ru, "/") {
		p, _, _ := strings.Cut(ru, "?")
		return p
	}
	if r.URL.Opaque != "" {
		return r.URL.Opaque
	}
	return r.URL.EscapedPath()
}

// canonicalURIs returns the candidate canonical URIs: the path as sent, then
// its normalised encoding ("" when that is the same). S3 does not
// double-encode the path, so for the clients that percent-encode it
// themselves the first is what they signed. normalizePath keeps %2F
// distinct from '/', so both candidates name the same key.
func canonicalURIs(r *http.Request) [2]string {
	raw := rawPath(r)
	if raw == "" {
		raw = "/"
	}
	n := normalizePath(raw)
	if n == raw {
		n = ""
	}
	return [2]string{raw, n}
}

// normalizePath decodes each %XX of an escaped path and re-encodes the
// result with uriEncode's rules; an escaped '/' stays escaped.
func normalizePath(p string) string {
	var b strings.Builder
	b.Grow(len(p) + 8)
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '%' && i+2 < len(p) && ishex(p[i+1]) && ishex(p[i+2]) {
			c = unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			if c == '/' {
				b.WriteString("%2F")
				continue
			}
		} else if c == '/' {
			b.WriteByte('/')
			continue
		}
		if unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(upperhex[c>>4])
			b.WriteByte(upperhex[c&15])
		}
	}
	return b.String()
}

// headerValues finds the values of the lower-case header name, looking past
// the fields net/http moves out of the header map.
func headerValues(r *http.Request, name string) []string {
	switch name {
	case "host":
		if r.Host != "" {
			return []string{r.Host}
		}
		return []string{r.URL.Host}
	}
	if vs := r.Header.Values(name); len(vs) > 0 {
		return vs
	}
	for k, vs := range r.Header {
		if strings.EqualFold(k, name) {
			return vs
		}
	}
	switch name {
	case "content-length":
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		if len(r.TransferEncoding) > 0 {
			return []string{strings.Join(r.TransferEncoding, ",")}
		}
	}
	return nil
}

// canonicalHeaders writes "name:value\n" for each signed header, values
// trimmed, runs of spaces collapsed, several values joined with ','.
func canonicalHeaders(r *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, name) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(trimCollapse(v))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func trimCollapse(v string) string {
	v = strings.TrimSpace(v)
	if !strings.Contains(v, "  ") {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b.WriteByte(c)
	}
	return b.String()
}

func buildCanonicalRequest(method, uri, query, headers, signedHeaders, payloadHash string) string {
	return method + "\n" + uri + "\n" + query + "\n" + headers + "\n" + signedHeaders + "\n" + payloadHash
}
