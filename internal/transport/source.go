package transport

import (
	"net"
	"net/netip"
)

// SourceAddr is the local address to dial to from a node listening on
// listen: the listening IP (any port), when it is one address and to is
// in the same scope (both loopback, or neither), else nil, letting the
// kernel choose. A node's peers then see its connections come from the
// address they know it by. Without it the kernel gives every connection
// to a loopback address the source 127.0.0.1, so that rules that cut the
// link between two nodes given 127.0.1.1 and 127.0.1.2 (the partition
// tests) would not match their traffic; and a host with several
// addresses would speak from one its peers do not know.
// TestDialsFromTheListeningAddress.
func SourceAddr(listen net.Addr, to string) *net.TCPAddr {
	la, ok := listen.(*net.TCPAddr)
	if !ok || la.IP == nil || la.IP.IsUnspecified() {
		return nil
	}
	host, _, err := net.SplitHostPort(to)
	if err != nil {
		return nil
	}
	dst, err := netip.ParseAddr(host)
	if err != nil {
		return nil // a name: its address is not known here
	}
	src, ok := netip.AddrFromSlice(la.IP)
	if !ok {
		return nil
	}
	src, dst = src.Unmap(), dst.Unmap()
	if src.Is4() != dst.Is4() || src.IsLoopback() != dst.IsLoopback() {
		return nil
	}
	return &net.TCPAddr{IP: la.IP}
}
