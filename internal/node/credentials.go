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
		var rec credentialsRecord
		if json.Unmarshal(b, &rec) != nil || rec.Format != credentialsFormat || rec.Validate() != nil {
			continue
		}
		if found == nil {
			c := rec.Credentials
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
