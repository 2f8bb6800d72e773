package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
	"github.com/redoubt-io/redoubt/internal/node"
	"github.com/redoubt-io/redoubt/internal/sites"
)

func newSiteCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "site",
		Short: "Link this cluster with others (sites) that share replicated buckets",
		Long: `Sites are clusters linked with each other, in different places, each taking
writes on its own. A bucket created available and replicated (redoubt bucket
create NAME --consistency available --replicate, or the S3 headers
x-redoubt-consistency: available and x-redoubt-site-replication: true) is
made on every linked site, with the same name, and replicated both ways in
the background: every version, every delete, large bodies copied to each
site's own drives. A site cut off from the others goes on taking writes;
when the link is back the sites copy each other what they lack, however long
the cut lasted, and writes made on two sites to one key both survive as
versions, the same one current on both (redoubt conflicts lists them).

Link each site to the others: run "redoubt site add" on every site, naming
another's admin endpoint and the file of its root credentials (its
redoubt-credentials.json, or "ACCESS_KEY SECRET_KEY"). Linked sites need the
same partition count. The lag (redoubt status, redoubt_site_lag_seconds)
says how long ago everything this site held was last known to be on the
other.`,
	}
	af.register(cmd.PersistentFlags(), "any node's admin address")
	annotateEnv(cmd.PersistentFlags())

	var endpoint, secretFile string
	add := &cobra.Command{
		Use:   "add [NAME] --endpoint URL --secret-file FILE",
		Short: "Link another site; NAME defaults to its endpoint's host",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if endpoint == "" || secretFile == "" {
				return fmt.Errorf("--endpoint and --secret-file are needed: the other site's admin address and the file of its root credentials")
			}
			b, err := os.ReadFile(secretFile)
			if err != nil {
				return fmt.Errorf("reading the secret file: %w", err)
			}
			ak, sk, err := sites.ParseSecret(b)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			} else {
				name = siteNameOf(endpoint)
			}
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var out admin.SiteStatus
			if err := c.call(cmd.Context(), c.addr, http.MethodPost, "/sites",
				node.SiteAdd{Name: name, Endpoint: endpoint, AccessKey: ak, SecretKey: sk}, &out); err != nil {
				return fmt.Errorf("link site %s: %w", name, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site %s linked at %s; run redoubt site add on it too, naming this cluster, for writes made there to come here\n", out.Name, out.Endpoint)
			return nil
		},
	}
	add.Flags().StringVar(&endpoint, "endpoint", "", "the other site's admin address (http://host:port of any of its nodes)")
	add.Flags().StringVar(&secretFile, "secret-file", "", "a file holding the other site's root credentials: its redoubt-credentials.json, or the access key and secret key")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the linked sites with their replication lag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var ss []admin.SiteStatus
			if err := c.call(cmd.Context(), c.addr, http.MethodGet, "/sites", nil, &ss); err != nil {
				return err
			}
			printSites(cmd.OutOrStdout(), ss)
			return nil
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Unlink a site: replication to it stops; what it has stays",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			if err := c.call(cmd.Context(), c.addr, http.MethodDelete, "/sites/"+url.PathEscape(args[0]), nil, nil); err != nil {
				return fmt.Errorf("remove site %s: %w", args[0], err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "site %s removed\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(add, list, remove)
	return withEnv(cmd)
}

// siteNameOf makes a site name of an endpoint's host and port.
func siteNameOf(endpoint string) string {
	u, err := url.Parse(admin.BaseURL(endpoint))
	if err != nil || u.Host == "" {
		return "site"
	}
	r := strings.NewReplacer(".", "-", ":", "-", "[", "", "]", "")
	return strings.ToLower(r.Replace(u.Host))
}

func printSites(w io.Writer, ss []admin.SiteStatus) {
	if len(ss) == 0 {
		fmt.Fprintln(w, "no sites linked")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tENDPOINT\tLAG\tBEHIND\tFETCHED\tSENT\tLAST ERROR")
	for _, s := range ss {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%d\t%s\n", s.Name, s.Endpoint,
			(time.Duration(s.LagSeconds * float64(time.Second))).Round(100*time.Millisecond), s.Behind, s.Partitions,
			s.RecordsFetched, s.RecordsSent, orDash(s.LastError))
	}
	tw.Flush()
	for _, s := range ss {
		for _, why := range s.Refused {
			fmt.Fprintf(w, "  %s: %s\n", s.Name, why)
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
