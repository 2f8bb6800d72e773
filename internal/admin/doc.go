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
