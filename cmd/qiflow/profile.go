package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/profile"
)

// qiflow's own global flags, which choose and adjust the profile. They may
// stand anywhere before a "--", before or after the subcommand, and are
// taken out of the arguments before Benthos parses them.
const (
	flagProfile     = "--profile"      // NAME: the section, over QIFLOW_ENV
	flagProfileFile = "--profile-file" // FILE: the profile file, over QIFLOW_CONFIG
	flagProfileSet  = "--profile-set"  // KEY=VALUE: one key, over everything else
)

// applyProfile loads the profile named by QIFLOW_ENV (see docs/profiles.md),
// strips the profile flags from args and returns what is left for the CLI.
func applyProfile(args []string) ([]string, error) {
	rest, opts, err := splitProfileFlags(args)
	if err != nil {
		return nil, err
	}
	p, err := profile.Load(opts)
	if err != nil {
		return nil, err
	}
	profile.Set(p)
	return rest, nil
}

// splitProfileFlags takes the profile flags, as "--flag value" or
// "--flag=value", out of args. Everything else, Benthos's flags included,
// is kept in order; so is everything from a "--" on.
func splitProfileFlags(args []string) (rest []string, opts profile.Options, err error) {
	if len(args) == 0 {
		return args, opts, nil
	}
	rest = []string{args[0]}
	for i := 1; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, value, inline := strings.Cut(arg, "=")
		if name != flagProfile && name != flagProfileFile && name != flagProfileSet {
			rest = append(rest, arg)
			continue
		}
		if !inline {
			if i+1 == len(args) {
				return nil, opts, fmt.Errorf("%s needs a value", name)
			}
			i++
			value = args[i]
		}
		if value == "" {
			return nil, opts, fmt.Errorf("%s needs a value", name)
		}
		switch name {
		case flagProfile:
			opts.Name = value
		case flagProfileFile:
			opts.File = value
		case flagProfileSet:
			opts.Sets = append(opts.Sets, value)
		}
	}
	return rest, opts, nil
}

// profileCommand is `qiflow profile`: the effective profile, each value
// with its source, secrets redacted. It exits non-zero when a file the
// profile names (a password file, a certificate) cannot be used.
func profileCommand() *cli.Command {
	return &cli.Command{
		Name:  "profile",
		Usage: "Show the effective environment profile: each value and where it came from, secrets redacted",
		Description: `
The profile holds the connection defaults of the redpanda input and output
and of the timescale output, for a pipeline that leaves a field out. Each
layer overrides the ones before it:

  built-in defaults < the profile file's section < REDPANDA_* and DATABASE_URL
                    < QIFLOW_* variables < --profile-set KEY=VALUE

QIFLOW_ENV or --profile NAME picks the section (development, staging or
production; development by default). The file is --profile-file FILE, else
QIFLOW_CONFIG, else ./qiflow.yaml when it exists. The profile flags are
global: they may stand before or after any command.

  qiflow profile
  qiflow profile --json
  QIFLOW_ENV=production qiflow profile
  qiflow --profile staging profile --profile-set database.pool_size=12

See docs/profiles.md.`[1:],
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the profile as JSON: {profile, file, entries: [{key, value, source}], problem}"},
		},
		Action: func(c *cli.Context) error {
			p, err := profile.Current()
			if err != nil {
				return err
			}
			checkErr := p.Check()
			if c.Bool("json") {
				err = writeProfileJSON(c.App.Writer, p, checkErr)
			} else {
				err = p.Describe(c.App.Writer)
			}
			if err != nil {
				return err
			}
			if checkErr != nil {
				return fmt.Errorf("profile %s cannot be used: %w", p.Name, checkErr)
			}
			return nil
		},
	}
}

// profileJSON is `qiflow profile --json`: what the table shows, with an
// empty value as "" rather than "-", and the check's failure, if any, as
// problem.
type profileJSON struct {
	Profile string         `json:"profile"`
	File    string         `json:"file"`
	Entries []profileEntry `json:"entries"`
	Problem string         `json:"problem,omitempty"`
}

type profileEntry struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source string `json:"source"`
}

func writeProfileJSON(w io.Writer, p *profile.Profile, checkErr error) error {
	out := profileJSON{Profile: p.Name, File: p.File, Entries: []profileEntry{}}
	for _, e := range p.Entries() {
		out.Entries = append(out.Entries, profileEntry(e))
	}
	if checkErr != nil {
		out.Problem = checkErr.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
