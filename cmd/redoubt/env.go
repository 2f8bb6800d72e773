package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment variable that sets a flag: REDOUBT_ and the
// flag name in upper case with '-' as '_' (--s3-addr: REDOUBT_S3_ADDR).
func envName(flag string) string {
	return "REDOUBT_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// withEnv names each flag's environment variable in its help text and,
// before the command runs, fills every flag not given on the command line
// from its variable. Flags win over the environment.
func withEnv(cmd *cobra.Command) *cobra.Command {
	annotateEnv(cmd.Flags())
	prev := cmd.PreRunE
	cmd.PreRunE = func(c *cobra.Command, args []string) error {
		var err error
		c.Flags().VisitAll(func(f *pflag.Flag) {
			v, ok := os.LookupEnv(envName(f.Name))
			if !ok || f.Changed || err != nil {
				return
			}
			vals := []string{v}
			if f.Value.Type() == "stringArray" {
				vals = strings.Split(v, ",") // a list in one variable
			}
			for _, v := range vals {
				if serr := f.Value.Set(v); serr != nil {
					err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, serr)
					return
				}
			}
		})
		if err == nil && prev != nil {
			err = prev(c, args)
		}
		return err
	}
	return cmd
}

// annotateEnv names each flag's environment variable in its help text.
// withEnv does it for a command's own flags; a command whose persistent
// flags its subcommands read from the environment themselves (see
// adminFlags.conn) annotates those.
func annotateEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		f.Usage += fmt.Sprintf(" [%s]", envName(f.Name))
	})
}
