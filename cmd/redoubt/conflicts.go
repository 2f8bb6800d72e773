package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/redoubt-io/redoubt/internal/admin"
)

func newConflictsCmd() *cobra.Command {
	var af adminFlags
	var prefix string
	cmd := &cobra.Command{
		Use:   "conflicts BUCKET",
		Short: "List the keys of an available bucket written concurrently",
		Long: `An available bucket takes writes on every side of a network partition. Two
writes of one key that did not see each other (made on two sides of a cut, or
at the same moment on two nodes) are both kept, as versions of the key, even
in an unversioned bucket: the one with the greater version ID is current, and
the key is in conflict until a write made after both, or a delete of one by
its version ID, resolves it. This lists those keys with their concurrent
versions, the current one first. The metric redoubt_available_conflicts
counts them per node.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.conn(cmd)
			if err != nil {
				return err
			}
			after := ""
			total := 0
			for {
				q := url.Values{}
				if prefix != "" {
					q.Set("prefix", prefix)
				}
				if after != "" {
					q.Set("after", after)
				}
				path := "/buckets/" + url.PathEscape(args[0]) + "/conflicts"
				if len(q) > 0 {
					path += "?" + q.Encode()
				}
				var page admin.Conflicts
				if err := c.call(cmd.Context(), c.addr, http.MethodGet, path, nil, &page); err != nil {
					return fmt.Errorf("conflicts of %s: %w", args[0], err)
				}
				printConflicts(cmd.OutOrStdout(), page.Keys, total == 0)
				total += len(page.Keys)
				if page.Next == "" {
					break
				}
				after = page.Next
			}
			if total == 0 {
				fmt.Fprintf(cmd.OutOrStdout(), "no conflicts in %s\n", args[0])
			}
			return nil
		},
	}
	af.register(cmd.Flags(), "any node's admin address")
	cmd.Flags().StringVar(&prefix, "prefix", "", "only keys that start with this")
	annotateEnv(cmd.Flags())
	return withEnv(cmd)
}

func printConflicts(w io.Writer, keys []admin.ConflictKey, header bool) {
	if len(keys) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if header {
		fmt.Fprintln(tw, "KEY\tVERSION\tCURRENT\tMODIFIED\tSIZE\tETAG")
	}
	for _, k := range keys {
		for _, v := range k.Versions {
			cur, size := "", fmt.Sprint(v.Size)
			if v.Current {
				cur = "yes"
			}
			if v.DeleteMarker {
				size = "(delete marker)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.Key, v.VersionID, cur, v.Modified.UTC().Format(time.RFC3339Nano), size, v.ETag)
		}
	}
	tw.Flush()
}
