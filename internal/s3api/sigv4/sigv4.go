package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Credentials looks up the secret key of an access key.
type Credentials interface {
	Secret(accessKey string) (secret string, ok bool)
}

// StaticCredentials maps access keys to secret keys.
type StaticCredentials map[string]string

// Secret implements Credentials.
func (c StaticCredentials) Secret(accessKey string) (string, bool) {
	s, ok := c[accessKey]
	return s, ok
}

// Config configures a Verifier.
type Config struct {
	// Region is the region this endpoint serves, e.g. "us-east-1". Requests
	// whose credential scope names another region fail with
	// AuthorizationHeaderMalformed, naming this region, so that clients
	// configured for the wrong region learn which one to use.
	Region string
	Creds  Credentials
	// Now reads the clock; nil means time.Now.
	Now func() time.Time
	// MaxSkew is how far the request time may lie from Now. 0 means 15
	// minutes, what S3 allows: wide enough for unsynchronised laptops, narrow
	// enough to bound the replay window of a captured request.
	MaxSkew time.Duration
}

// DefaultConfig returns a Config for region us-east-1 (the region clients
// sign with when none is configured) and the S3 skew of 15 minutes. Creds
// must still be set.
func DefaultConfig() Config {
	return Config{Region: "us-east-1", MaxSkew: defaultSkew}
}

const defaultSkew = 15 * time.Minute

// Validate reports whether c can be used.
func (c Config) Validate() error {
	if c.Region == "" {
		return errors.New("sigv4: config: empty region")
	}
	if strings.ContainsAny(c.Region, "/ ") {
		return fmt.Errorf("sigv4: config: bad region %q", c.Region)
	}
	if c.Creds == nil {
		return errors.New("sigv4: config: nil credentials")
	}
	if c.MaxSkew < 0 {
		return errors.New("sigv4: config: negative max skew")
	}
	return nil
}

// Verifier authenticates requests. It is safe for concurrent use.
type Verifier struct {
	region  string
	creds   Credentials
	now     func() time.Time
	maxSkew time.Duration

	// keys caches derived signing keys: deriving one is four HMACs, a
	// few percent of a small request's CPU, and a key serves every
	// request of one secret for a day.
	keys struct {
		sync.Mutex
		m map[keyScope][]byte
	}
}

type keyScope struct{ secret, date string }

// maxCachedKeys bounds the key cache; it is emptied when full.
const maxCachedKeys = 1024

// New returns a Verifier for cfg.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &Verifier{region: cfg.Region, creds: cfg.Creds, now: cfg.Now, maxSkew: cfg.MaxSkew}
	if v.now == nil {
		v.now = time.Now
	}
	if v.maxSkew == 0 {
		v.maxSkew = defaultSkew
	}
	return v, nil
}

// S3 error codes returned in Error.Code.
const (
	CodeAccessDenied                      = "AccessDenied"
	CodeAuthorizationHeaderMalformed      = "AuthorizationHeaderMalformed"
	CodeAuthorizationQueryParametersError = "AuthorizationQueryParametersError"
	CodeIncompleteBody                    = "IncompleteBody"
	CodeInvalidAccessKeyID                = "InvalidAccessKeyId"
	CodeInvalidArgument                   = "InvalidArgument"
	CodeInvalidRequest                    = "InvalidRequest"
	CodeInvalidToken                      = "InvalidToken"
	CodeMalformedTrailerError             = "MalformedTrailerError"
	CodeMissingContentLength              = "MissingContentLength"
	CodeRequestTimeTooSkewed              = "RequestTimeTooSkewed"
	CodeSignatureDoesNotMatch             = "SignatureDoesNotMatch"
	CodeXAmzContentSHA256Mismatch         = "XAmzContentSHA256Mismatch"
)

// Error is an authentication or payload failure, carrying the S3 error code
// and HTTP status to answer with.
type Error struct {
	Code    string
	Message string
	Status  int

	// The optional elements S3 adds to some error documents; empty when
	// they do not apply.

	// AccessKeyID is the unknown access key of an InvalidAccessKeyId
	// (<AWSAccessKeyId>).
	AccessKeyID string
	// HeadersNotSigned lists, comma-separated and sorted, the x-amz-*
	// headers present but not signed (<HeadersNotSigned>).
	HeadersNotSigned string
	// ArgumentName and ArgumentValue name the offending argument of an
	// InvalidArgument (<ArgumentName>, <ArgumentValue>).
	ArgumentName  string
	ArgumentValue string
}

func (e *Error) Error() string {
	return "sigv4: " + e.Code + ": " + e.Message
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, &Error{Code: CodeSignatureDoesNotMatch}) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

func newErr(code string, status int, format string, args ...any) *Error {
	return &Error{Code: code, Status: status, Message: fmt.Sprintf(format, args...)}
}

func errMalformed(format string, args ...any) *Error {
	return newErr(CodeAuthorizationHeaderMalformed, http.StatusBadRequest,
		"The authorization header is malformed; "+format, args...)
}

func errQuery(format string, args ...any) *Error {
	return newErr(CodeAuthorizationQueryParametersError, http.StatusBadRequest, format, args...)
}

func errSignature() *Error {
	return newErr(CodeSignatureDoesNotMatch, http.StatusForbidden,
		"The request signature we calculated does not match the signature you provided. Check your key and signing method.")
}

func errIncomplete() *Error {
	return newErr(CodeIncompleteBody, http.StatusBadRequest,
		"You did not provide the number of bytes specified by the Content-Length HTTP header.")
}

// errAuthArgument is S3's InvalidArgument for an Authorization header it
// cannot even split into a scheme and its parameters, or whose scheme it
// does not know.
func errAuthArgument(msg, value string) *Error {
	e := newErr(CodeInvalidArgument, http.StatusBadRequest, "%s", msg)
	e.ArgumentName, e.ArgumentValue = "Authorization", truncate(value)
	return e
}

// errUnsupportedAlgorithm is what S3 answers to signature schemes it does not
// accept on an endpoint ("Please use AWS4-HMAC-SHA256").
func errUnsupportedAlgorithm(alg string) *Error {
	if strings.Contains(alg, "ECDSA") {
		return newErr(CodeInvalidRequest, http.StatusBadRequest,
			"The authorization mechanism you have provided (%s, SigV4a) is not supported. Please use AWS4-HMAC-SHA256.", truncate(alg))
	}
	return newErr(CodeInvalidRequest, http.StatusBadRequest,
		"The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.")
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

const (
	algorithm   = "AWS4-HMAC-SHA256"
	service     = "s3"
	terminal    = "aws4_request"
	iso8601     = "20060102T150405Z"
	yyyymmdd    = "20060102"
	maxExpires  = 604800 // one week, the S3 limit for presigned URLs
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

	unsignedPayload         = "UNSIGNED-PAYLOAD"
	streamingSigned         = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer  = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrailr = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
)

type payloadMode int

const (
	modeUnsigned payloadMode = iota // pass through
	modeHash                        // pass through, SHA-256 checked at EOF
	modeStreamingSigned
	modeStreamingSignedTrailer
	modeStreamingUnsignedTrailer
)

func (m payloadMode) chunked() bool { return m >= modeStreamingSigned }

// Request is a verified request.
type Request struct {
	AccessKey string
	// DecodedLength is the object size the client declares:
	// x-amz-decoded-content-length for aws-chunked bodies, else
	// r.ContentLength (-1 if unknown).
	DecodedLength int64

	mode        payloadMode
	payloadHash []byte // modeHash: the declared digest
	signingKey  []byte
	seedSig     string
	amzDate     string // request time, ISO 8601 basic
	scope       string // date/region/s3/aws4_request
	declared    []string
	bodyCalled  bool
	trailers    map[string]string
	done        bool
}

// Trailers returns the trailing headers (lower-case names, e.g.
// "x-amz-checksum-crc32") once Body has returned io.EOF; nil before. It is
// empty, not nil, after EOF of a body without trailers.
func (q *Request) Trailers() map[string]string {
	if !q.done {
		return nil
	}
	if q.trailers == nil {
		return map[string]string{}
	}
	return q.trailers
}

// Anonymous reports whether r carries no authentication at all: no
// Authorization header and no X-Amz-Signature, X-Amz-Credential or
// X-Amz-Algorithm query parameter. Signature Version 2 query parameters
// (AWSAccessKeyId, Signature) also count as authentication, so that such a
// request reaches Verify and is refused rather than served anonymously.
func Anonymous(r *http.Request) bool {
	if len(r.Header.Values("Authorization")) > 0 {
		return false
	}
	for _, kv := range parseQuery(r.URL.RawQuery) {
		switch kv.key {
		case "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm", "AWSAccessKeyId", "Signature":
			return false
		}
	}
	return true
}

// Verify authenticates r (Authorization header, or presigned query
// parameters). It reads no body. It returns *Error on failure.
func (v *Verifier) Verify(r *http.Request) (*Request, error) {
	q, err := v.verify(r)
	if err != nil {
		return nil, err
	}
	return q, nil
}

func (v *Verifier) verify(r *http.Request) (*Request, *Error) {
	query := parseQuery(r.URL.RawQuery)
	auths := r.Header.Values("Authorization")
	presigned, v2 := false, false
	for _, kv := range query {
		switch kv.key {
		case "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm":
			presigned = true
		case "AWSAccessKeyId", "Signature":
			v2 = true
		}
	}
	switch {
	case len(auths) > 0 && presigned:
		return nil, newErr(CodeInvalidArgument, http.StatusBadRequest,
			"Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified")
	case len(auths) > 1:
		return nil, errMalformed("more than one Authorization header")
	case len(auths) == 1:
		return v.verifyHeader(r, auths[0], query)
	case presigned:
		return v.verifyPresigned(r, query)
	case v2:
		return nil, errUnsupportedAlgorithm("AWS")
	}
	return nil, newErr(CodeAccessDenied, http.StatusForbidden, "Access Denied")
}

// authHeader is a parsed Authorization header.
type authHeader struct {
	cred          credential
	signedHeaders []string
	signedStr     string
	signature     string
}

type credential struct {
	accessKey, date, region, service, terminal string
}

func (c credential) scope() string {
	return c.date + "/" + c.region + "/" + c.service + "/" + c.terminal
}

const maxAuthLen = 8 << 10

// parseAuthorization parses
// "AWS4-HMAC-SHA256 Credential=AK/20130524/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex".
func parseAuthorization(h string) (authHeader, *Error) {
	var a authHeader
	if len(h) > maxAuthLen {
		return a, errMalformed("the header is too long.")
	}
	alg, rest, ok := strings.Cut(strings.TrimLeft(h, " "), " ")
	switch {
	case !ok:
		return a, errAuthArgument("Authorization header is invalid -- one and only one ' ' (space) required.", h)
	case alg == algorithm:
	case alg == "AWS" || strings.Contains(alg, "ECDSA"):
		// Signature Version 2 and SigV4a: schemes S3 knows but does not
		// take here.
		return a, errUnsupportedAlgorithm(alg)
	default:
		return a, errAuthArgument("Unsupported Authorization Type", alg)
	}
	var haveCred, haveSH, haveSig bool
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, val, ok := strings.Cut(part, "=")
		if !ok {
			return a, errMalformed("the authorization component %q is malformed.", truncate(part))
		}
		switch strings.TrimSpace(k) {
		case "Credential":
			if haveCred {
				return a, errMalformed("duplicate Credential.")
			}
			haveCred = true
			c, err := parseCredential(val)
			if err != "" {
				return a, errMalformed("%s", err)
			}
			a.cred = c
		case "SignedHeaders":
			if haveSH {
				return a, errMalformed("duplicate SignedHeaders.")
			}
			haveSH = true
			a.signedStr = val
			a.signedHeaders = strings.Split(val, ";")
		case "Signature":
			if haveSig {
				return a, errMalformed("duplicate Signature.")
			}
			haveSig = true
			a.signature = val
		default:
			return a, errMalformed("the authorization component %q is malformed.", truncate(part))
		}
	}
	if !haveCred || !haveSH || !haveSig {
		return a, errMalformed("the authorization header requires three components: Credential, SignedHeaders, and Signature.")
	}
	if e := checkSignedHeaders(a.signedHeaders); e != "" {
		return a, errMalformed("%s", e)
	}
	return a, nil
}

// checkSignedHeaders returns a message if names is not a usable SignedHeaders
// list. S3 requires host to be signed.
func checkSignedHeaders(names []string) string {
	host := false
	for _, n := range names {
		if n == "" || strings.ContainsAny(n, " \t:\r\n") {
			return "SignedHeaders contains an empty or invalid name."
		}
		if n != strings.ToLower(n) {
			return "SignedHeaders names must be lower case."
		}
		if n == "host" {
			host = true
		}
	}
	if !host {
		return "SignedHeaders must include host."
	}
	return ""
}

// parseCredential parses "AK/yyyymmdd/region/s3/aws4_request"; it returns a
// message on failure, in the words S3 uses.
func parseCredential(s string) (credential, string) {
	var c credential
	parts := strings.Split(s, "/")
	if len(parts) != 5 || parts[0] == "" {
		return c, "the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"."
	}
	c = credential{accessKey: parts[0], date: parts[1], region: parts[2], service: parts[3], terminal: parts[4]}
	if _, err := time.Parse(yyyymmdd, c.date); err != nil || len(c.date) != 8 {
		return c, fmt.Sprintf("incorrect date format %q. This date in the credential must be in the format \"yyyyMMdd\".", truncate(c.date))
	}
	if c.service != service {
		return c, fmt.Sprintf("incorrect service %q. This endpoint belongs to \"s3\".", truncate(c.service))
	}
	if c.terminal != terminal {
		return c, fmt.Sprintf("incorrect terminal %q. This endpoint uses \"aws4_request\".", truncate(c.terminal))
	}
	return c, ""
}

// scopeAndKey checks the region, finds the secret and derives the signing key.
func (v *Verifier) scopeAndKey(c credential, malformed func(string, ...any) *Error) ([]byte, *Error) {
	if c.region != v.region {
		return nil, malformed("the region '%s' is wrong; expecting '%s'", truncate(c.region), v.region)
	}
	secret, ok := v.creds.Secret(c.accessKey)
	if !ok {
		e := newErr(CodeInvalidAccessKeyID, http.StatusForbidden,
			"The AWS Access Key Id you provided does not exist in our records.")
		e.AccessKeyID = truncate(c.accessKey)
		return nil, e
	}
	return v.cachedKey(secret, c.date), nil
}

// cachedKey is signingKey for the verifier's region, from the cache.
func (v *Verifier) cachedKey(secret, date string) []byte {
	ks := keyScope{secret, date}
	v.keys.Lock()
	defer v.keys.Unlock()
	if k, ok := v.keys.m[ks]; ok {
		return k
	}
	if v.keys.m == nil || len(v.keys.m) >= maxCachedKeys {
		v.keys.m = map[keyScope][]byte{}
	}
	k := signingKey(secret, date, v.region)
	v.keys.m[ks] = k
	return k
}

func (v *Verifier) verifyHeader(r *http.Request, h string, query []kv) (*Request, *Error) {
	a, err := parseAuthorization(h)
	if err != nil {
		return nil, err
	}
	if r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, errToken()
	}
	key, err := v.scopeAndKey(a.cred, errMalformed)
	if err != nil {
		return nil, err
	}
	// The request time: x-amz-date, else Date.
	var t time.Time
	if xd := r.Header.Get("X-Amz-Date"); xd != "" {
		pt, perr := time.Parse(iso8601, xd)
		if perr != nil {
			return nil, errNoDate()
		}
		t = pt
	} else if d := r.Header.Get("Date"); d != "" {
		pt, perr := http.ParseTime(d)
		if perr != nil {
			return nil, errNoDate()
		}
		t = pt.UTC()
	} else {
		return nil, errNoDate()
	}
	amzDate := t.Format(iso8601)
	if amzDate[:8] != a.cred.date {
		return nil, errMalformed("Invalid credential date. Date is not the same as X-Amz-Date.")
	}
	if e := v.checkSkew(t); e != nil {
		return nil, e
	}
	// S3 requires x-amz-content-sha256 on header-signed requests and answers
	// its absence with 400 InvalidRequest "Missing required header for this
	// request: x-amz-content-sha256".
	ph := r.Header.Get("X-Amz-Content-Sha256")
	if ph == "" {
		return nil, newErr(CodeInvalidRequest, http.StatusBadRequest,
			"Missing required header for this request: x-amz-content-sha256")
	}
	q := &Request{AccessKey: a.cred.accessKey, signingKey: key, seedSig: a.signature,
		amzDate: amzDate, scope: a.cred.scope()}
	if e := q.setPayload(r, ph); e != nil {
		return nil, e
	}
	if !v.signatureMatches(r, query, false, a.signedHeaders, a.signedStr, ph, amzDate, q.scope, key, a.signature) {
		return nil, errSignature()
	}
	if e := checkAllSigned(r, a.signedHeaders); e != nil {
		return nil, e
	}
	return q, nil
}

func hasParam(query []kv, name string) bool {
	for _, p := range query {
		if p.key == name {
			return true
		}
	}
	return false
}

// errToken refuses a session token: Redoubt issues none, so every token is
// one it cannot have made, and S3 answers such a token with 400 InvalidToken.
func errToken() *Error {
	return newErr(CodeInvalidToken, http.StatusBadRequest, "The provided token is malformed or otherwise invalid.")
}

// checkAllSigned refuses a request carrying an x-amz-* header that its
// signature does not cover, as S3 does: otherwise anyone holding a signed
// request (a presigned URL above all) could add x-amz-copy-source,
// x-amz-metadata-directive or x-amz-meta-* and change what it does. Like
// S3, it tolerates x-amz-content-sha256 unsigned (it is checked against
// the payload anyway). Headers such as X-Amzn-Trace-Id, User-Agent and
// Expect, which SDKs deliberately leave unsigned, do not start with
// "x-amz-" and are not concerned.
func checkAllSigned(r *http.Request, signed []string) *Error {
	var missing []string
	for name := range r.Header {
		n := strings.ToLower(name)
		if !strings.HasPrefix(n, "x-amz-") || n == "x-amz-content-sha256" {
			continue
		}
		found := false
		for _, s := range signed {
			if s == n {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	e := newErr(CodeAccessDenied, http.StatusForbidden, "There were headers present in the request which were not signed")
	e.HeadersNotSigned = truncate(strings.Join(missing, ", "))
	return e
}

func errNoDate() *Error {
	return newErr(CodeAccessDenied, http.StatusForbidden,
		"AWS authentication requires a valid Date or x-amz-date header")
}

func (v *Verifier) checkSkew(t time.Time) *Error {
	d := v.now().Sub(t)
	if d < 0 {
		d = -d
	}
	if d > v.maxSkew {
		return newErr(CodeRequestTimeTooSkewed, http.StatusForbidden,
			"The difference between the request time and the current time is too large.")
	}
	return nil
}

// setPayload classifies the payload hash ph and sets the payload mode and the
// declared length.
func (q *Request) setPayload(r *http.Request, ph string) *Error {
	q.DecodedLength = r.ContentLength
	switch ph {
	case unsignedPayload:
		q.mode = modeUnsigned
		return nil
	case streamingSigned:
		q.mode = modeStreamingSigned
	case streamingSignedTrailer:
		q.mode = modeStreamingSignedTrailer
	case streamingUnsignedTrailr:
		q.mode = modeStreamingUnsignedTrailer
	default:
		if strings.HasPrefix(ph, "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD") {
			return errUnsupportedAlgorithm("AWS4-ECDSA-P256-SHA256")
		}
		b, err := hex.DecodeString(ph)
		if err != nil || len(b) != sha256.Size {
			return newErr(CodeInvalidArgument, http.StatusBadRequest,
				"x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.")
		}
		q.mode = modeHash
		q.payloadHash = b
		return nil
	}
	// aws-chunked: the object size is x-amz-decoded-content-length, which
	// S3 requires (411 MissingContentLength without it).
	dl := r.Header.Get("X-Amz-Decoded-Content-Length")
	if dl == "" {
		return newErr(CodeMissingContentLength, http.StatusLengthRequired,
			"You must provide the Content-Length HTTP header.")
	}
	n, err := strconv.ParseInt(dl, 10, 64)
	if err != nil || n < 0 {
		return newErr(CodeInvalidArgument, http.StatusBadRequest,
			"x-amz-decoded-content-length must be a non-negative integer.")
	}
	q.DecodedLength = n
	for _, name := range strings.Split(r.Header.Get("X-Amz-Trailer"), ",") {
		if name = strings.ToLower(strings.TrimSpace(name)); name != "" {
			q.declared = append(q.declared, name)
		}
	}
	return nil
}

func (v *Verifier) verifyPresigned(r *http.Request, query []kv) (*Request, *Error) {
	get := func(k string) (string, bool) {
		found, val := false, ""
		for _, p := range query {
			if p.key == k {
				if found {
					return "", false
				}
				found, val = true, p.value
			}
		}
		return val, found
	}
	alg, okA := get("X-Amz-Algorithm")
	credStr, okC := get("X-Amz-Credential")
	sig, okS := get("X-Amz-Signature")
	dateStr, okD := get("X-Amz-Date")
	shStr, okH := get("X-Amz-SignedHeaders")
	expStr, okE := get("X-Amz-Expires")
	if okA && alg != algorithm {
		// SigV4a (ECDSA) included: S3 answers it with the same error on
		// an endpoint that does not take it.
		return nil, errQuery("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
	}
	if !okA || !okC || !okS || !okD || !okH || !okE {
		return nil, errQuery("Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
	}
	c, msg := parseCredential(credStr)
	if msg != "" {
		return nil, errQuery("Error parsing the X-Amz-Credential parameter; %s", msg)
	}
	t, err := time.Parse(iso8601, dateStr)
	if err != nil {
		return nil, errQuery("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
	}
	expires, err := strconv.ParseInt(expStr, 10, 64)
	if err != nil || expires < 0 {
		return nil, errQuery("X-Amz-Expires should be a number")
	}
	if expires > maxExpires {
		return nil, errQuery("X-Amz-Expires must be less than a week (in seconds) that is; 604800")
	}
	signed := strings.Split(shStr, ";")
	if e := checkSignedHeaders(signed); e != "" {
		return nil, errQuery("%s", e)
	}
	if c.date != dateStr[:8] {
		return nil, errQuery("Invalid credential date. Date is not the same as X-Amz-Date.")
	}
	if hasParam(query, "X-Amz-Security-Token") || r.Header.Get("X-Amz-Security-Token") != "" {
		return nil, errToken()
	}
	key, e := v.scopeAndKey(c, func(f string, a ...any) *Error {
		return errQuery("Error parsing the X-Amz-Credential parameter; "+f, a...)
	})
	if e != nil {
		return nil, e
	}
	now := v.now()
	if t.Sub(now) > v.maxSkew {
		return nil, newErr(CodeAccessDenied, http.StatusForbidden, "Request is not valid yet")
	}
	if now.After(t.Add(time.Duration(expires) * time.Second)) {
		return nil, newErr(CodeAccessDenied, http.StatusForbidden, "Request has expired")
	}
	// Presigned URLs sign UNSIGNED-PAYLOAD unless the client put a payload
	// hash in the query.
	ph := unsignedPayload
	if p, ok := get("X-Amz-Content-Sha256"); ok && p != "" {
		ph = p
	}
	q := &Request{AccessKey: c.accessKey, signingKey: key, seedSig: sig,
		amzDate: dateStr, scope: c.scope()}
	if e := q.setPayload(r, ph); e != nil {
		return nil, e
	}
	if !v.signatureMatches(r, query, true, signed, shStr, ph, dateStr, q.scope, key, sig) {
		return nil, errSignature()
	}
	if e := checkAllSigned(r, signed); e != nil {
		return nil, e
	}
	return q, nil
}

// signatureMatches computes the signature for each candidate canonical URI
// and compares it with sig in constant time.
func (v *Verifier) signatureMatches(r *http.Request, query []kv, presigned bool, signed []string, signedStr, payloadHash, amzDate, scope string, key []byte, sig string) bool {
	cq := canonicalQuery(query, presigned)
	ch := canonicalHeaders(r, signed)
	match := 0
	for i, uri := range canonicalURIs(r) {
		if i > 0 && uri == "" {
			continue
		}
		creq := buildCanonicalRequest(r.Method, uri, cq, ch, signedStr, payloadHash)
		got := hex.EncodeToString(hmacSHA256(key, stringToSign(amzDate, scope, creq)))
		match |= subtle.ConstantTimeCompare([]byte(got), []byte(sig))
	}
	return match == 1
}

func stringToSign(amzDate, scope, canonicalRequest string) []byte {
	h := sha256.Sum256([]byte(canonicalRequest))
	return []byte(algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:]))
}

func hmacSHA256(key, data []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(data)
	return m.Sum(nil)
}

func signingKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), []byte(date))
	k = hmacSHA256(k, []byte(region))
	k = hmacSHA256(k, []byte(service))
	return hmacSHA256(k, []byte(terminal))
}

// StoredContentEncoding returns the Content-Encoding to store with an object
// uploaded with value ce: the aws-chunked transfer coding removed, as S3 does.
func StoredContentEncoding(ce string) string {
	var out []string
	for _, p := range strings.Split(ce, ",") {
		p = strings.TrimSpace(p)
		if p != "" && !strings.EqualFold(p, "aws-chunked") {
			out = append(out, p)
		}
	}
	return strings.Join(out, ",")
}
