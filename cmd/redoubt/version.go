package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the Go version and the source revision",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info, _ := debug.ReadBuildInfo()
			_, err := fmt.Fprint(cmd.OutOrStdout(), versionText(version, info))
			return err
		},
	}
}

// versionText renders the version report; info may be nil.
func versionText(v string, info *debug.BuildInfo) string {
	var b strings.Builder
	fmt.Fprintf(&b, "redoubt %s\n", v)
	if info == nil {
		b.WriteString("go       unknown\n")
		return b.String()
	}
	fmt.Fprintf(&b, "go       %s\n", info.GoVersion)
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	rev := settings["vcs.revision"]
	if rev == "" {
		rev = "unknown"
	}
	if settings["vcs.modified"] == "true" {
		rev += " (modified)"
	}
	fmt.Fprintf(&b, "revision %s\n", rev)
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "time     %s\n", t)
	}
	return b.String()
}
