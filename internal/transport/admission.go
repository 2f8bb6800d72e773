package transport

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"
)

// After the TLS 1.3 handshake both sides prove they hold the cluster
// secret, bound to this very session so a proof cannot be replayed on
// another connection:
//
//	proof(role) = HMAC-SHA256(secret, "redoubt-admit-v1" || role || EKM)
//	EKM = ExportKeyingMaterial("redoubt admission", nil, 32)
//
// The dialer speaks first: version u8 | proof("dialer"). The acceptor
// checks it, then answers version u8 | status u8 (0 admitted, 1 refused)
// and, when admitted, proof("acceptor"). An acceptor therefore says
// nothing but "refused" to a peer without the secret, and reads no
// request from it.
const (
	admitVersion = 1
	admitLabel   = "redoubt-admit-v1"
	ekmLabel     = "redoubt admission"
	roleDialer   = "dialer"
	roleAcceptor = "acceptor"
	alpn         = "redoubt/1" // calls only
	alpnMessages = "redoubt/2" // calls and one-way messages

	statusAdmitted byte = 0
	statusRefused  byte = 1
)

func proof(secret []byte, role string, cs tls.ConnectionState) ([]byte, error) {
	ekm, err := cs.ExportKeyingMaterial(ekmLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("transport: export keying material: %w", err)
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(admitLabel))
	m.Write([]byte(role))
	m.Write(ekm)
	return m.Sum(nil), nil
}

// certificate makes the self-signed certificate a node presents. Nobody
// checks its signature chain or dates: peers pin the key inside it.
func certificate(id *Identity) (tls.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: string(id.ID())},
		NotBefore:    time.Now().Add(-time.Hour),
		// RFC 5280's "no well-defined expiration date".
		NotAfter:              time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, id.pub, id.priv)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("transport: certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: id.priv}, nil
}

var errPeerCert = errors.New("transport: peer certificate")

// peerID returns the NodeID of the key in a peer's certificate chain. TLS
// has already checked that the peer holds the matching private key.
func peerID(rawCerts [][]byte) (NodeID, error) {
	if len(rawCerts) != 1 {
		return "", fmt.Errorf("%w: %d certificates, want 1", errPeerCert, len(rawCerts))
	}
	c, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", fmt.Errorf("%w: %v", errPeerCert, err)
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", fmt.Errorf("%w: key is %T, want ed25519", errPeerCert, c.PublicKey)
	}
	return IDOf(pub), nil
}

// protocols are the ALPN protocols a node offers, the newest first: TLS
// settles on the newest both sides speak (Go's server takes its own first
// that the client offers), so a node can talk to one of an older release.
// A connection on "redoubt/1" carries no one-way messages: Send falls back
// to an unanswered request there.
var protocols = []string{alpnMessages, alpn}

// offered is the protocols a node of cfg offers.
func (cfg Config) offered() []string {
	if len(cfg.protocols) > 0 {
		return cfg.protocols
	}
	return protocols
}

func serverTLS(cert tls.Certificate, protos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   protos,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := peerID(raw)
			return err
		},
	}
}

// clientTLS pins the server's key to want, unless want is empty (first
// contact with a seed known only by address).
func clientTLS(cert tls.Certificate, want NodeID, protos []string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		NextProtos:   protos,
		// Verification is by key pinning below, not by a CA chain.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			got, err := peerID(raw)
			if err != nil {
				return err
			}
			if want != "" && got != want {
				return fmt.Errorf("%w: want %s, got %s", ErrPinning, want, got)
			}
			return nil
		},
	}
}

// admitDialer runs the dialer's half of admission on a handshaken conn.
func admitDialer(tc *tls.Conn, secret []byte) error {
	cs := tc.ConnectionState()
	mine, err := proof(secret, roleDialer, cs)
	if err != nil {
		return err
	}
	if _, err := tc.Write(append([]byte{admitVersion}, mine...)); err != nil {
		return err
	}
	var head [2]byte
	if _, err := io.ReadFull(tc, head[:]); err != nil {
		return err
	}
	if head[0] != admitVersion {
		return fmt.Errorf("%w: peer speaks admission version %d", ErrRefused, head[0])
	}
	if head[1] != statusAdmitted {
		return fmt.Errorf("%w: peer refused our proof of the cluster secret", ErrRefused)
	}
	theirs := make([]byte, sha256.Size)
	if _, err := io.ReadFull(tc, theirs); err != nil {
		return err
	}
	want, err := proof(secret, roleAcceptor, cs)
	if err != nil {
		return err
	}
	if !hmac.Equal(theirs, want) {
		return fmt.Errorf("%w: peer does not prove the cluster secret", ErrRefused)
	}
	return nil
}

// admitAcceptor runs the acceptor's half; a refused peer is told so.
func admitAcceptor(tc *tls.Conn, secret []byte) error {
	cs := tc.ConnectionState()
	msg := make([]byte, 1+sha256.Size)
	if _, err := io.ReadFull(tc, msg); err != nil {
		return fmt.Errorf("%w: reading proof: %v", ErrRefused, err)
	}
	want, err := proof(secret, roleDialer, cs)
	if err != nil {
		return err
	}
	if msg[0] != admitVersion || !hmac.Equal(msg[1:], want) {
		// Best effort: the peer learns it was refused, nothing more.
		tc.Write([]byte{admitVersion, statusRefused})
		if msg[0] != admitVersion {
			return fmt.Errorf("%w: admission version %d", ErrRefused, msg[0])
		}
		return fmt.Errorf("%w: wrong proof of the cluster secret", ErrRefused)
	}
	mine, err := proof(secret, roleAcceptor, cs)
	if err != nil {
		return err
	}
	_, err = tc.Write(append([]byte{admitVersion, statusAdmitted}, mine...))
	return err
}
