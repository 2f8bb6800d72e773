package transport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// NodeID names a node: the lowercase hex of the first 16 bytes of the
// SHA-256 of its ed25519 public key (32 characters). It is stable for as
// long as the key file lives, printable, and cannot be claimed without the
// private key, since every connection proves possession of the key.
type NodeID string

// idBytes is how much of the key hash a NodeID keeps: 128 bits is far
// beyond accidental collision and still short enough to read in a log.
const idBytes = 16

// IDOf returns the NodeID of an ed25519 public key.
func IDOf(pub ed25519.PublicKey) NodeID {
	sum := sha256.Sum256(pub)
	return NodeID(hex.EncodeToString(sum[:idBytes]))
}

// ParseNodeID checks that s is a well-formed NodeID.
func ParseNodeID(s string) (NodeID, error) {
	if len(s) != 2*idBytes {
		return "", fmt.Errorf("transport: node id %q: want %d hex characters", s, 2*idBytes)
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", fmt.Errorf("transport: node id %q: not lowercase hex", s)
		}
	}
	return NodeID(s), nil
}

// Identity is a node's key pair. It is immutable and safe to share.
type Identity struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	id   NodeID
}

// NewIdentity makes a fresh identity from random bytes (nil means
// crypto/rand). It is not stored anywhere: for tests and ephemeral nodes.
func NewIdentity(random io.Reader) (*Identity, error) {
	if random == nil {
		random = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("transport: generate key: %w", err)
	}
	return &Identity{priv: priv, pub: pub, id: IDOf(pub)}, nil
}

func (i *Identity) ID() NodeID                { return i.id }
func (i *Identity) Public() ed25519.PublicKey { return i.pub }

// IdentityFile is the name of the key file inside the identity directory.
const IdentityFile = "node.key"

// identityFormat is the version of the key file; a file of another
// version is refused rather than guessed at.
const identityFormat = 1

const identityType = "redoubt-node-key"

// maxIdentityFile bounds what the parser reads: a real file is ~250 bytes.
const maxIdentityFile = 4 << 10

// identityJSON is the key file: JSON, so an operator can read which node a
// file belongs to, with the key itself as base64 PKCS#8 DER (standard
// tooling can read it). NodeID is redundant and checked on load: a file
// edited by hand or copied half-way is caught.
type identityJSON struct {
	Format     int    `json:"format"`
	Type       string `json:"type"`
	NodeID     NodeID `json:"node_id"`
	PrivateKey []byte `json:"private_key_pkcs8"`
}

// LoadOrCreateIdentity reads dir/node.key, or on first start generates a
// key and writes it there (mode 0600, dir created 0700 if missing). A file
// that exists but cannot be used returns an error wrapping ErrIdentity and
// is left untouched. Two processes racing to create the file end up with
// the same identity: the file is published with a no-clobber link.
func LoadOrCreateIdentity(dir string) (*Identity, error) {
	path := filepath.Join(dir, IdentityFile)
	id, err := loadIdentity(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	id, err = NewIdentity(nil)
	if err != nil {
		return nil, err
	}
	if err := SaveIdentity(dir, id); err != nil {
		// Another process may have published its key first: the file
		// is the node's identity.
		if theirs, lerr := loadIdentity(path); lerr == nil {
			return theirs, nil
		}
		return nil, err
	}
	return id, nil
}

// SaveIdentity stores id as dir/node.key (dir created 0700 if missing),
// e.g. to keep a copy on every drive of a node. A file already holding the
// same identity is left as is; one holding another identity, or one that
// cannot be read, is an error wrapping ErrIdentity and is not touched.
func SaveIdentity(dir string, id *Identity) error {
	path := filepath.Join(dir, IdentityFile)
	check := func() error {
		have, err := loadIdentity(path)
		if err != nil {
			return err
		}
		if have.ID() != id.ID() {
			return fmt.Errorf("%w: %s holds node %s, not %s", ErrIdentity, path, have.ID(), id.ID())
		}
		return nil
	}
	if err := check(); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("transport: identity dir: %w", err)
	}
	b, err := marshalIdentity(id)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".node.key.*")
	if err != nil {
		return fmt.Errorf("transport: write identity: %w", err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp already uses 0600; Chmod states it for readers and for
	// unusual umasks.
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("transport: write identity: %w", err)
	}
	// A link, unlike a rename, never replaces a file that appeared
	// meanwhile.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return check()
		}
		return fmt.Errorf("transport: write identity: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("transport: sync identity dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("transport: sync identity dir: %w", err)
	}
	return nil
}

func loadIdentity(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("transport: identity: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrIdentity, path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %v; a private key must be 0600 (chmod 600 it)", ErrIdentity, path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIdentityFile+1))
	if err != nil {
		return nil, fmt.Errorf("transport: identity: %w", err)
	}
	id, err := parseIdentity(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return id, nil
}

func marshalIdentity(id *Identity) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(id.priv)
	if err != nil {
		return nil, fmt.Errorf("transport: encode key: %w", err)
	}
	b, err := json.MarshalIndent(identityJSON{Format: identityFormat, Type: identityType, NodeID: id.id, PrivateKey: der}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("transport: encode key: %w", err)
	}
	return append(b, '\n'), nil
}

// parseIdentity decodes a key file. Every failure wraps ErrIdentity and
// says what is wrong.
func parseIdentity(b []byte) (*Identity, error) {
	if len(b) > maxIdentityFile {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrIdentity, maxIdentityFile)
	}
	var f identityJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: not a Redoubt key file: %v", ErrIdentity, err)
	}
	if f.Type != identityType {
		return nil, fmt.Errorf("%w: type %q, want %q", ErrIdentity, f.Type, identityType)
	}
	if f.Format != identityFormat {
		return nil, fmt.Errorf("%w: format %d, this build reads format %d", ErrIdentity, f.Format, identityFormat)
	}
	k, err := x509.ParsePKCS8PrivateKey(f.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrIdentity, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: private key is %T, want ed25519", ErrIdentity, k)
	}
	pub := priv.Public().(ed25519.PublicKey)
	id := &Identity{priv: priv, pub: pub, id: IDOf(pub)}
	if f.NodeID != id.id {
		return nil, fmt.Errorf("%w: file names node %q but its key is node %q", ErrIdentity, f.NodeID, id.id)
	}
	return id, nil
}
