package main

import (
	"fmt"
	"io"
	"net/http"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func newBucketCmd() *cobra.Command {
	var af adminFlags
	cmd := &cobra.Command{
		Use:   "bucket",
		Short: "Create and list buckets, with what S3 cannot say: their consistency",
		Long: `Buckets are made and used through S3; these verbs add what S3 has no words
for. A bucket's consistency is chosen when it is created and kept for its life:
strong (the default) makes every operation linearizable, and the side of a
network partition without a majority answers 503; available accepts writes on
every side and merges them after the heal, losing none (a cluster only).
An available bucket's writes are acknowledged once --write-copies nodes hold
them, or as many as are reachable, never none; each answer says how many in
its x-redoubt-copies header. S3 clients choose both with the
x-redoubt-consistency and x-redoubt-write-copies headers of CreateBucket,
and HeadBucket shows them. The calls are signed with the root
credentials: --access-key and --secret-key, or the credentials file in --data
(by default ./redoubt-data, then ./redoubt-dev).`,
	}
	af.register(cmd.PersistentFlags(), "any node's admin address")
	annotateEnv(cmd.PersistentFlags())

	var consistency string
	var copies int
	var retention time.Duration
	var replicate bool
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a bucket",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var b admin.Bucket
			in := admin.BucketCreate{Name: args[0], Consistency: consistency, WriteCopies: copies, Replicate: replicate}
			if retention > 0 {
				in.ConflictRetention = retention.String()
			}
			if err := c.call(cmd.Context(), c.addr, http.MethodPost, "/buckets", in, &b); err != nil {
				return fmt.Errorf("create bucket %s: %w", args[0], err)
			}
			sites := ""
			if b.Replicate {
				sites = ", replicated to the linked sites"
			}
			if b.WriteCopies > 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "bucket %s created: %s, writes acknowledged on %d nodes%s\n", b.Name, b.Consistency, b.WriteCopies, sites)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "bucket %s created: %s\n", b.Name, b.Consistency)
			}
			return nil
		},
	}
	create.Flags().StringVar(&consistency, "consistency", "strong", "strong or available; kept for the bucket's life")
	create.Flags().DurationVar(&retention, "conflict-retention", 0, "available, unversioned buckets: remove the versions written concurrently with a key's current one after this long (0: keep them until a write or a delete resolves the conflict)")
	create.Flags().BoolVar(&replicate, "replicate", false, "available buckets: replicate the bucket to every site this cluster is linked with, both ways (redoubt site)")
	create.Flags().IntVar(&copies, "write-copies", 0, "available buckets: nodes that must hold a write before it is acknowledged, as far as reachable (default 2)")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the buckets with their versioning and consistency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			var bs []admin.Bucket
			if err := c.call(cmd.Context(), c.addr, http.MethodGet, "/buckets", nil, &bs); err != nil {
				return err
			}
			printBuckets(cmd.OutOrStdout(), bs)
			return nil
		},
	}
	cmd.AddCommand(create, list)
	return withEnv(cmd)
}

func printBuckets(w io.Writer, bs []admin.Bucket) {
	if len(bs) == 0 {
		fmt.Fprintln(w, "no buckets")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tCONSISTENCY\tVERSIONING\tSITES\tCREATED")
	for _, b := range bs {
		sites := "-"
		if b.Replicate {
			sites = "replicated"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.Name, b.Consistency, b.Versioning, sites, b.Created.UTC().Format(time.RFC3339))
	}
	tw.Flush()
}
