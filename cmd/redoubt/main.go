// Command redoubt is the single binary of the Redoubt object store: the
// server, the operator verbs and the tools around them. Each verb lives in
// its own file as a newXxxCmd constructor and is added to the root in
// newRootCmd.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// version is set at build time:
//
//	go build -ldflags "-X main.version=v0.1.0" ./cmd/redoubt
var version = "dev"

// logLevelEnv sets the log level when --log-level is not given.
const logLevelEnv = "REDOUBT_LOG_LEVEL"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal cancels ctx so verbs can shut down cleanly; after
	// that, default handling comes back and a second signal kills at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command line and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(stderr, "redoubt: %v\n", err)
		return 1
	}
	return 0
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "redoubt",
		Short: "Redoubt is an S3-compatible object store that keeps data through disk, node and site failures",
		Long: `Redoubt is an S3-compatible object store. It splits objects into erasure-coded
or mirrored shards spread over drives, nodes and zones, verifies every shard on
every read, and repairs what it finds missing or corrupt.

Environment:
  ` + logLevelEnv + `   log level when --log-level is not given`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Catch a bad level before any verb starts. A verb that sets its
		// own PersistentPreRunE replaces this one and should call it.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			_, err := logLevel(cmd)
			return err
		},
	}
	root.PersistentFlags().String("log-level", "info",
		"log level: debug, info, warn or error ["+logLevelEnv+"]")
	// One verb per file; add new verbs here.
	root.AddCommand(
		newVersionCmd(),
		newBenchCmd(),
		newServerCmd(),
		newRepairCmd(),
		newScrubCmd(),
		newDevCmd(),
		newStatusCmd(),
		newLayoutCmd(),
		newBucketCmd(),
		newConflictsCmd(),
		newSiteCmd(),
	)
	return root
}

// logLevel resolves --log-level, falling back to REDOUBT_LOG_LEVEL when
// the flag is not on the command line.
func logLevel(cmd *cobra.Command) (slog.Level, error) {
	name := "info"
	if f := cmd.Flags().Lookup("log-level"); f != nil {
		name = f.Value.String()
		if v, ok := os.LookupEnv(logLevelEnv); ok && !f.Changed && v != "" {
			name = v
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.TrimSpace(name))); err != nil {
		return 0, fmt.Errorf("bad log level %q: want debug, info, warn or error", name)
	}
	return level, nil
}

// newLogger returns the logger for a verb: text to the command's stderr at
// the level logLevel resolves (info if that is bad, which the root's
// pre-run hook has already refused).
func newLogger(cmd *cobra.Command) *slog.Logger {
	level, err := logLevel(cmd)
	if err != nil {
		level = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
}
