package node

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// credentialsFile is kept in every data directory so that losing a drive
// never loses the root credentials.
const credentialsFile = "redoubt-credentials.json"

// credentialsFormat is the version of the credentials file.
const credentialsFormat = 1

// Credentials are the root access key and secret key of the S3 endpoint.
type Credentials struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
}

// Validate checks the lengths S3 clients accept.
func (c Credentials) Validate() error {
	if len(c.AccessKey) < 3 || len(c.AccessKey) > 128 || strings.ContainsAny(c.AccessKey, "/ \t\n") {
		return errors.New("access key must be 3 to 128 characters without '/' or spaces")
	}
	if len(c.SecretKey) < 8 || len(c.SecretKey) > 128 {
		return errors.New("secret key must be 8 to 128 characters")
	}
	return nil
}

type credentialsRecord struct {
	Format int `json:"format"`
	Credentials
}

// loadOrCreateCredentials returns the credentials kept in dirs (the first
// readable copy wins and is written to the directories that lack one), or
// generates new ones on first start. Files are written with mode 0600.
func loadOrCreateCredentials(dirs []string) (Credentials, bool, error) {
	var found *Credentials
	var missing []string
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, credentialsFile))
		if errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, d)
			continue
		}
		if err != nil {
			continue // an unreadable drive; another copy will do
		}
		c, err := parseCredentials(b)
		if err != nil {
			continue
		}
		if found == nil {
			found = &c
		}
	}
	created := false
	if found == nil {
		c := newCredentials()
		found = &c
		created = true
		missing = dirs
	}
	for _, d := range missing {
		if err := writeCredentials(d, *found); err != nil && created {
			return Credentials{}, false, err
		}
	}
	return *found, created, nil
}

// ReadCredentials returns the root credentials kept in a data directory
// (or in the directory of `redoubt dev`), for the tools that sign admin
// requests. A missing file is an error wrapping fs.ErrNotExist.
func ReadCredentials(dir string) (Credentials, error) {
	path := filepath.Join(dir, credentialsFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	c, err := parseCredentials(b)
	if err != nil {
		return Credentials{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteCredentials keeps c in dir (mode 0600), replacing what was there.
func WriteCredentials(dir string, c Credentials) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return writeCredentials(dir, c)
}

// parseCredentials decodes a credentials file.
func parseCredentials(b []byte) (Credentials, error) {
	var rec credentialsRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return Credentials{}, fmt.Errorf("malformed credentials file: %w", err)
	}
	if rec.Format != credentialsFormat {
		return Credentials{}, fmt.Errorf("credentials file format %d, want %d", rec.Format, credentialsFormat)
	}
	if err := rec.Validate(); err != nil {
		return Credentials{}, fmt.Errorf("credentials file: %w", err)
	}
	return rec.Credentials, nil
}

// keepCredentials writes c to each of dirs that does not hold it already,
// so that the admin tools of a cluster node find the keys in its data
// directories as they do on a single node. A drive that cannot take them
// is reported, not fatal: the cluster keeps the keys.
func keepCredentials(dirs []string, c Credentials) error {
	var errs []error
	for _, d := range dirs {
		if have, err := ReadCredentials(d); err == nil && have == c {
			continue
		}
		if err := writeCredentials(d, c); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newCredentials makes random root credentials. rand.Text is 26
// characters of base32 (130 bits): upper case and digits, which every
// client accepts in keys.
func newCredentials() Credentials {
	return Credentials{AccessKey: "RD" + rand.Text()[:18], SecretKey: (rand.Text() + rand.Text())[:40]}
}

func writeCredentials(dir string, c Credentials) error {
	b, err := json.MarshalIndent(credentialsRecord{Format: credentialsFormat, Credentials: c}, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, credentialsFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("writing credentials: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, credentialsFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing credentials: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
