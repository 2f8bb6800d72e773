// Package admin serves a node's operator endpoints on their own listener,
// apart from the S3 port, so that monitoring keeps working when S3 traffic
// saturates its port and so that the S3 port exposes nothing but S3:
//
//   - GET /health answers 200 "ok" whenever the process serves HTTP. It is
//     a liveness probe: it checks nothing else, so an orchestrator restarts
//     the process only when it has truly stopped serving.
//   - GET /status answers the node's Status as indented JSON. The numbers
//     come from a StatusSource the server provides; this package owns only
//     the shape of the answer and its encoding.
//   - GET /metrics answers the Prometheus text format from the registry in
//     Config, never the global default registry, so tests and several
//     nodes in one process do not share metrics.
//
// # Who may call
//
// Protect puts a Guard in front of every endpoint of the admin listener
// (these and the ones the server adds: /repair, /cluster/layout...,
// /debug/pprof/). Only GET /health is open. Every other request must be
// signed with AWS Signature V4 (service "s3", the node's region, the
// payload's SHA-256 signed) by the root credentials, the same keys and
// the same verifier as the S3 API, and be allowed by a Policy (RootOnly
// until users exist). Reading /status is guarded too: it names drives,
// paths, nodes and addresses. Requests that may change state (POST to
// /repair and the layout endpoints) are refused before their signature
// is even checked unless their Content-Type is application/json and any
// Origin and Sec-Fetch-Site headers say same-origin, so that a web page
// cannot drive the admin API through an operator's browser. Refusals are
// JSON (APIError with a code), counted on /metrics and /status and
// logged at a bounded rate. Client signs requests as the Guard wants.
//
// /metrics: Prometheus cannot sign SigV4 requests, but it can send a
// bearer token (authorization.credentials in a scrape config). MinIO
// likewise guards its metrics with a bearer token by default and opens
// them only when told to. Metrics tell an outsider what a cluster holds
// and how it is built, so Redoubt keeps them closed by default: with
// AuthConfig.MetricsToken set (redoubt server --metrics-token, or
// REDOUBT_METRICS_TOKEN), GET /metrics also passes with
// "Authorization: Bearer <token>"; without it, /metrics needs a signed
// request like /status. The token opens /metrics and nothing else.
//
// New returns an http.Handler; the caller owns the listener and the
// http.Server and their shutdown. The handler is safe for concurrent use.
// StatusSource.Status is called once per /status request, concurrently if
// requests overlap, with a context that ends when the request does or
// after Config.StatusTimeout.
//
// Status is plain data with snake_case JSON names; the JSON is the
// interface operators and scripts rely on, so fields are added, never
// renamed or removed.
package admin
