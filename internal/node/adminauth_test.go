package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/redoubt-io/redoubt/internal/admin"
)

// The admin API behind the real SigV4 verifier: what it refuses, with
// which error, and what it lets through.

// rootClient signs as n's root.
func rootClient(n *Node) *admin.Client {
	return &admin.Client{AccessKey: n.Credentials.AccessKey, SecretKey: n.Credentials.SecretKey, Region: n.cfg.Region}
}

// adminReply is an answer of the admin API.
type adminReply struct {
	status int
	err    admin.APIError
	body   string
}

func sendAdmin(t *testing.T, req *http.Request) adminReply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	rep := adminReply{status: resp.StatusCode, body: string(b)}
	if resp.StatusCode != 200 {
		if err := json.Unmarshal(b, &rep.err); err != nil {
			t.Fatalf("%s %s: %d answer is not JSON: %q", req.Method, req.URL.Path, resp.StatusCode, b)
		}
	}
	return rep
}

// unsignedAdmin is a request with no signature, headers as given.
func unsignedAdmin(t *testing.T, method, url, body string, hdr ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// signedAdmin is a request signed by c, with extra headers set before
// signing (a browser's Origin and Sec-Fetch-Site would be sent with it,
// signed or not).
func signedAdmin(t *testing.T, c *admin.Client, method, url, body string, hdr ...string) *http.Request {
	t.Helper()
	req, err := c.NewRequest(t.Context(), method, url, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	// Re-sign: the headers above are part of what a browser would send.
	creds := aws.Credentials{AccessKeyID: c.AccessKey, SecretAccessKey: c.SecretKey}
	region := c.Region
	if region == "" {
		region = "us-east-1"
	}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, req.Header.Get("X-Amz-Content-Sha256"), "s3", region, time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func (r adminReply) want(t *testing.T, what string, status int, code, says string) {
	t.Helper()
	if r.status != status || r.err.Code != code || !strings.Contains(r.err.Error, says) {
		t.Errorf("%s: %d %+v; want %d %s saying %q", what, r.status, r.err, status, code, says)
	}
}

func TestAdminRefusesUnsigned(t *testing.T) {
	n := startNodeWith(t, func(c *Config) { c.Pprof = true })
	u := n.AdminURL
	for _, p := range []string{"/status", "/repair", "/metrics", "/debug/pprof/cmdline", "/nope"} {
		sendAdmin(t, unsignedAdmin(t, "GET", u+p, "")).want(t, "unsigned GET "+p, 403, "AccessDenied", "not signed")
	}
	sendAdmin(t, unsignedAdmin(t, "POST", u+"/repair", "{}", "Content-Type", "application/json")).
		want(t, "unsigned POST /repair", 403, "AccessDenied", "not signed")
	if rep := sendAdmin(t, unsignedAdmin(t, "GET", u+"/health", "")); rep.status != 200 || rep.body != "ok\n" {
		t.Errorf("/health: %d %q; want it open", rep.status, rep.body)
	}
	if p := n.repair.Progress(); p.Passes != 0 {
		t.Errorf("an unsigned POST started %d repair passes", p.Passes)
	}
}

func TestAdminRefusesBadSignatures(t *testing.T) {
	n := startNodeWith(t, nil)
	u := n.AdminURL
	wrong := &admin.Client{AccessKey: n.Credentials.AccessKey, SecretKey: "not-the-secret-key"}
	sendAdmin(t, signedAdmin(t, wrong, "GET", u+"/status", "")).want(t, "wrong secret", 403, "SignatureDoesNotMatch", "signature")
	stranger := &admin.Client{AccessKey: "SOMEONEELSE", SecretKey: "whatever-secret"}
	sendAdmin(t, signedAdmin(t, stranger, "GET", u+"/status", "")).want(t, "unknown key", 403, "InvalidAccessKeyId", "")
	wrongRegion := &admin.Client{AccessKey: n.Credentials.AccessKey, SecretKey: n.Credentials.SecretKey, Region: "eu-west-3"}
	req, err := wrongRegion.NewRequest(t.Context(), "GET", u+"/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	sendAdmin(t, req).want(t, "wrong region", 400, "AuthorizationHeaderMalformed", "us-east-1")

	root := rootClient(n)
	// The payload must be signed: UNSIGNED-PAYLOAD is refused.
	req = unsignedAdmin(t, "GET", u+"/status", "")
	req.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
	creds := aws.Credentials{AccessKeyID: root.AccessKey, SecretAccessKey: root.SecretKey}
	if err := v4.NewSigner().SignHTTP(t.Context(), creds, req, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	sendAdmin(t, req).want(t, "unsigned payload", 400, "InvalidRequest", "sign their payload")
	// So is a presigned URL, which a page could embed.
	pre := unsignedAdmin(t, "GET", u+"/status?X-Amz-Expires=300", "")
	url, _, err := v4.NewSigner().PresignHTTP(t.Context(), creds, pre, "UNSIGNED-PAYLOAD", "s3", "us-east-1", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sendAdmin(t, unsignedAdmin(t, "GET", url, "")).want(t, "presigned URL", 400, "InvalidRequest", "presigned")
	// A body other than the one signed.
	req = signedAdmin(t, root, "POST", u+"/repair", `{"a":1}`)
	req.Body = io.NopCloser(strings.NewReader(`{"b":2}`))
	sendAdmin(t, req).want(t, "swapped body", 400, "XAmzContentSHA256Mismatch", "")
	if p := n.repair.Progress(); p.Passes != 0 {
		t.Errorf("a refused POST started %d repair passes", p.Passes)
	}
}

func TestAdminRefusesCrossOriginChanges(t *testing.T) {
	n := startNodeWith(t, nil)
	u := n.AdminURL
	root := rootClient(n)
	// Even signed, a change a browser sends for another site is refused,
	// and so is one that is not JSON.
	sendAdmin(t, signedAdmin(t, root, "POST", u+"/repair", "{}", "Origin", "http://evil.example")).
		want(t, "foreign Origin", 403, "CrossOriginRequestRefused", "evil.example")
	sendAdmin(t, signedAdmin(t, root, "POST", u+"/repair", "{}", "Sec-Fetch-Site", "cross-site")).
		want(t, "cross-site fetch", 403, "CrossOriginRequestRefused", "cross-site")
	sendAdmin(t, signedAdmin(t, root, "POST", u+"/repair", "x=1", "Content-Type", "application/x-www-form-urlencoded")).
		want(t, "form post", 415, "UnsupportedMediaType", "application/x-www-form-urlencoded")
	sendAdmin(t, unsignedAdmin(t, "POST", u+"/repair", "x=1", "Content-Type", "text/plain", "Origin", "http://evil.example")).
		want(t, "a page's simple POST", 403, "CrossOriginRequestRefused", "evil.example")
	if p := n.repair.Progress(); p.Passes != 0 {
		t.Errorf("a refused POST started %d repair passes", p.Passes)
	}
	// The same change, same-origin and signed, works.
	origin := strings.TrimPrefix(u, "http://")
	rep := sendAdmin(t, signedAdmin(t, root, "POST", u+"/repair", "{}", "Origin", "http://"+origin, "Sec-Fetch-Site", "same-origin"))
	if rep.status != 200 {
		t.Fatalf("signed same-origin POST /repair: %d %s", rep.status, rep.body)
	}
	if p := n.repair.Progress(); p.Passes != 1 {
		t.Errorf("signed POST /repair started %d passes; want 1", p.Passes)
	}
}

func TestAdminSignedRequestsWork(t *testing.T) {
	n := startNodeWith(t, func(c *Config) { c.Pprof = true; c.MetricsToken = "scrape-token-0123" })
	root := rootClient(n)
	ctx := t.Context()
	// Three refusals first, to be counted.
	for range 3 {
		sendAdmin(t, unsignedAdmin(t, "GET", n.AdminURL+"/status", ""))
	}
	var st admin.Status
	if err := root.Call(ctx, n.AdminURL, "GET", "/status", nil, &st); err != nil {
		t.Fatal(err)
	}
	if st.Version == "" || len(st.Drives) != 1 {
		t.Errorf("signed /status: %+v", st)
	}
	if st.AdminRequestsRefused != 3 {
		t.Errorf("/status counts %d refused admin requests; want 3", st.AdminRequestsRefused)
	}
	var p RepairProgress
	if err := root.Call(ctx, n.AdminURL, "POST", "/repair", nil, &p); err != nil || p.Passes != 1 {
		t.Errorf("signed POST /repair: %+v, %v", p, err)
	}
	for _, path := range []string{"/debug/pprof/cmdline", "/metrics"} {
		req, err := root.NewRequest(ctx, "GET", n.AdminURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep := sendAdmin(t, req); rep.status != 200 {
			t.Errorf("signed GET %s: %d %s", path, rep.status, rep.body)
		}
	}
	// Prometheus's way in: the bearer token, for /metrics only.
	rep := sendAdmin(t, unsignedAdmin(t, "GET", n.AdminURL+"/metrics", "", "Authorization", "Bearer scrape-token-0123"))
	if rep.status != 200 || !strings.Contains(rep.body, `redoubt_admin_auth_failures_total{code="AccessDenied"} 3`) ||
		!strings.Contains(rep.body, "redoubt_meta_engine_read_amplification") ||
		!strings.Contains(rep.body, "process_resident_memory_bytes") || !strings.Contains(rep.body, "go_memstats_heap_inuse_bytes") {
		t.Errorf("/metrics with the token: %d\n%s", rep.status, rep.body)
	}
	sendAdmin(t, unsignedAdmin(t, "GET", n.AdminURL+"/status", "", "Authorization", "Bearer scrape-token-0123")).
		want(t, "/status with the metrics token", 400, "InvalidArgument", "")
	sendAdmin(t, unsignedAdmin(t, "GET", n.AdminURL+"/metrics", "", "Authorization", "Bearer guessed")).
		want(t, "/metrics with a wrong token", 403, "AccessDenied", "metrics token")
}

// TestRegressionOpenAdminAPIRemovedALiveNode replays the hole: two
// unauthenticated POSTs (stage remove, apply) took a live node out of a
// cluster's layout, and a web page could send them as simple form posts.
// They are refused now, and the layout stays as it was; the same calls
// signed by the root credentials still work.
func TestRegressionOpenAdminAPIRemovedALiveNode(t *testing.T) {
	tc := startCluster(t, clusterOptions{nodes: 3, zones: 3, raftTick: 20 * time.Millisecond})
	n := tc.node(0)
	before := tc.clusterStatus(0).LayoutVersion
	victim := string(tc.nodes[2].id)
	stage := n.AdminURL + "/cluster/layout/stage"
	apply := n.AdminURL + "/cluster/layout/apply"
	edit := `{"op":"remove","node":"` + victim + `"}`

	sendAdmin(t, unsignedAdmin(t, "POST", stage, edit, "Content-Type", "application/json")).
		want(t, "unsigned stage remove", 403, "AccessDenied", "not signed")
	sendAdmin(t, unsignedAdmin(t, "POST", apply, "", "Content-Type", "application/json")).
		want(t, "unsigned apply", 403, "AccessDenied", "not signed")
	// As a page's form would send them, from the operator's browser.
	sendAdmin(t, unsignedAdmin(t, "POST", stage, edit, "Content-Type", "text/plain", "Origin", "http://evil.example", "Sec-Fetch-Site", "cross-site")).
		want(t, "cross-site stage remove", 403, "CrossOriginRequestRefused", "")
	sendAdmin(t, unsignedAdmin(t, "POST", apply, "", "Content-Type", "application/x-www-form-urlencoded")).
		want(t, "form apply", 415, "UnsupportedMediaType", "")

	cs := tc.clusterStatus(0)
	if cs.LayoutVersion != before || cs.StagedChanges != 0 {
		t.Fatalf("after refused calls: layout v%d with %d staged; want v%d with none", cs.LayoutVersion, cs.StagedChanges, before)
	}
	for _, ns := range cs.Nodes {
		if ns.ID == victim && !ns.InLayout {
			t.Fatalf("node %s was taken out of the layout", victim)
		}
	}

	// Signed, the operator's calls work: stage, preview, revert.
	root := rootClient(n)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v admin.LayoutView
	if err := root.Call(ctx, n.AdminURL, "POST", "/cluster/layout/stage", admin.LayoutEdit{Op: "remove", Node: victim}, &v); err != nil || len(v.Staged) != 1 {
		t.Fatalf("signed stage: %+v, %v", v.Staged, err)
	}
	var p admin.LayoutPreview
	if err := root.Call(ctx, n.AdminURL, "GET", "/cluster/layout/preview", nil, &p); err != nil || p.MovedSlots == 0 {
		t.Fatalf("signed preview: %+v, %v", p, err)
	}
	if err := root.Call(ctx, n.AdminURL, "POST", "/cluster/layout/revert", nil, nil); err != nil {
		t.Fatalf("signed revert: %v", err)
	}
	var e *admin.Error
	if err := (&admin.Client{AccessKey: clusterAccessKey, SecretKey: "wrong-secret-key"}).Call(ctx, n.AdminURL, "POST", "/cluster/layout/apply", nil, nil); !errors.As(err, &e) || e.Code != "SignatureDoesNotMatch" {
		t.Errorf("apply with a wrong secret: %v", err)
	}
	if cs := tc.clusterStatus(0); cs.LayoutVersion != before || cs.StagedChanges != 0 {
		t.Errorf("at the end: layout v%d with %d staged; want v%d with none", cs.LayoutVersion, cs.StagedChanges, before)
	}
}
