package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/node"
)

// defaultCredentialDirs are where the admin verbs look for the root
// credentials when neither keys nor --data are given: the data directory
// of `redoubt server` and the directory of `redoubt dev`, as they are by
// default, so that both work out of the box from where they were started.
var defaultCredentialDirs = []string{"redoubt-data", "redoubt-dev"}

// adminFlags are the flags of every verb that calls the admin API: where
// it is, and the root credentials that sign the calls (the admin API
// answers nothing else).
type adminFlags struct {
	addr                 string
	accessKey, secretKey string
	region               string
	dataDirs             []string
}

// register adds the flags to fs; addrUsage says which node --admin-addr
// names.
func (a *adminFlags) register(fs *pflag.FlagSet, addrUsage string) {
	fs.StringVar(&a.addr, "admin-addr", "127.0.0.1:3903", addrUsage)
	fs.StringVar(&a.accessKey, "access-key", "", "root access key that signs the admin calls (default: the credentials file in --data)")
	fs.StringVar(&a.secretKey, "secret-key", "", "root secret key, with --access-key")
	fs.StringVar(&a.region, "region", "us-east-1", "the region the server serves (its --region)")
	fs.StringArrayVar(&a.dataDirs, "data", nil, "a data directory of the server, or the --dir of redoubt dev, holding the root credentials (redoubt-credentials.json); repeatable (default: ./redoubt-data, then ./redoubt-dev)")
}

// adminConn is an admin API client and where its keys came from.
type adminConn struct {
	*admin.Client
	addr   string
	source string
}

// conn resolves the flags of cmd, each from the command line, else from
// its environment variable (REDOUBT_ACCESS_KEY, ...; the same variables
// `redoubt server` reads), else its default, and returns a client signing
// with the keys found.
func (a *adminFlags) conn(cmd *cobra.Command) (*adminConn, error) {
	fromEnv := func(name string, v *string) {
		if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
			return
		}
		if e, ok := os.LookupEnv(envName(name)); ok && e != "" {
			*v = e
		}
	}
	fromEnv("admin-addr", &a.addr)
	fromEnv("access-key", &a.accessKey)
	fromEnv("secret-key", &a.secretKey)
	fromEnv("region", &a.region)
	if f := cmd.Flags().Lookup("data"); f != nil && !f.Changed {
		if e := os.Getenv(envName("data")); e != "" {
			a.dataDirs = strings.Split(e, ",")
		}
	}
	c := &admin.Client{Region: a.region}
	conn := &adminConn{Client: c, addr: a.addr}
	switch {
	case (a.accessKey == "") != (a.secretKey == ""):
		return nil, errors.New("give both --access-key and --secret-key (or REDOUBT_ACCESS_KEY and REDOUBT_SECRET_KEY), or neither")
	case a.accessKey != "":
		c.AccessKey, c.SecretKey = a.accessKey, a.secretKey
		conn.source = "--access-key"
		return conn, nil
	}
	var dirs []string
	for _, d := range a.dataDirs {
		if d != "" { // an empty REDOUBT_DATA names no directory
			dirs = append(dirs, d)
		}
	}
	explicit := len(dirs) > 0
	if !explicit {
		dirs = defaultCredentialDirs
	}
	var tried []string
	for _, d := range dirs {
		creds, err := node.ReadCredentials(d)
		if err == nil {
			c.AccessKey, c.SecretKey = creds.AccessKey, creds.SecretKey
			conn.source = filepath.Join(d, "redoubt-credentials.json")
			return conn, nil
		}
		if !errors.Is(err, fs.ErrNotExist) || explicit {
			// A file that is there but unreadable says more than the
			// list of places tried.
			return nil, fmt.Errorf("reading the root credentials for the admin API: %w", err)
		}
		tried = append(tried, d)
	}
	return nil, fmt.Errorf("no root credentials for the admin API: give --access-key and --secret-key (or REDOUBT_ACCESS_KEY and REDOUBT_SECRET_KEY), or --data with the server's data directory; no redoubt-credentials.json in %s",
		strings.Join(tried, " or "))
}

// call is admin.Client.Call against addr; a signature refusal says which
// keys were used and where they came from.
func (c *adminConn) call(ctx context.Context, addr, method, path string, in, out any) error {
	err := c.Call(ctx, addr, method, path, in, out)
	var e *admin.Error
	if errors.As(err, &e) && (e.Code == "SignatureDoesNotMatch" || e.Code == "InvalidAccessKeyId") {
		return fmt.Errorf("%w (signed with access key %s from %s; the admin API takes the server's root credentials)", err, c.AccessKey, c.source)
	}
	return err
}

// follow shows the progress of a pass that runs on the server: while
// more(*v), it writes line(*v) over the last one on w and reads *v again
// from path half a second later; then it writes the last line.
func follow[T any](ctx context.Context, c *adminConn, path string, w io.Writer, v *T, more func(T) bool, line func(T) string) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for more(*v) {
		fmt.Fprintf(w, "\r%s", line(*v))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		var next T
		if err := c.call(ctx, c.addr, http.MethodGet, path, nil, &next); err != nil {
			return err
		}
		*v = next
	}
	fmt.Fprintf(w, "\r%s\n", line(*v))
	return nil
}
