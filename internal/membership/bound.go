package membership

import (
	"fmt"
	"log"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// boundTransport is memberlist's network transport with its outgoing TCP
// streams (state exchange, probes by TCP) sent from the address it is
// bound to, as its UDP packets already are: see transport.SourceAddr for
// why. memberlist's own dials leave the source to the kernel.
type boundTransport struct {
	*memberlist.NetTransport
	local net.IP
}

func (t *boundTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *boundTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if dst, _, err := net.SplitHostPort(a.Addr); err == nil {
		if ip := net.ParseIP(dst); ip != nil && ip.IsLoopback() == t.local.IsLoopback() && (ip.To4() == nil) == (t.local.To4() == nil) {
			d.LocalAddr = &net.TCPAddr{IP: t.local}
		}
	}
	return d.Dial("tcp", a.Addr)
}

var _ memberlist.NodeAwareTransport = (*boundTransport)(nil)

// boundTransportFor gives mc a boundTransport when it binds one address
// (not 0.0.0.0), and fixes its port when it asked for any (port 0), as
// memberlist does for the transport it makes itself: binding TCP and UDP
// on one free port can race another process, so it tries a few times.
// TestGossipDialsFromItsAddress.
func boundTransportFor(mc *memberlist.Config, logger *log.Logger) error {
	ip := net.ParseIP(mc.BindAddr)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{mc.BindAddr}, BindPort: mc.BindPort, Logger: logger}
	tries := 1
	if mc.BindPort == 0 {
		tries = 10
	}
	var err error
	for range tries {
		var nt *memberlist.NetTransport
		if nt, err = memberlist.NewNetTransport(nc); err == nil {
			if mc.BindPort == 0 {
				mc.BindPort = nt.GetAutoBindPort()
				if mc.AdvertisePort == 0 {
					mc.AdvertisePort = mc.BindPort
				}
			}
			mc.Transport = &boundTransport{NetTransport: nt, local: ip}
			return nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return fmt.Errorf("membership: bind %s: %w", net.JoinHostPort(mc.BindAddr, fmt.Sprint(mc.BindPort)), err)
}
