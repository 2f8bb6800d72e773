package node

import (
	"net/http"
	"net/http/pprof"
)

// registerPprof adds the runtime profiles to mux. It registers on mux
// itself rather than importing net/http/pprof for its side effect, which
// would put them on http.DefaultServeMux for any server that uses it.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
