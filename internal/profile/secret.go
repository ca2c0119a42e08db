package profile

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Redacted is what a secret prints as.
const Redacted = "[redacted]"

// Secret is a string that does not print: every fmt verb, log/slog, JSON
// and YAML show Redacted in its place (or nothing when it is empty), also
// inside the structs that hold it. Reveal returns the value, for the one
// place that needs it: the client that authenticates.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns Redacted, or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// GoString redacts, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("profile.Secret(%q)", s.String()) }

// Format redacts for every verb, keeping width and flags.
func (s Secret) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		fmt.Fprint(f, s.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}

// MarshalText redacts, for encoding/json and YAML encoders.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// LogValue redacts, for log/slog.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// redactedPassword replaces a password inside a connection string.
const redactedPassword = "xxxxx"

// kvPassword matches password settings of a key=value connection string.
var kvPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

// RedactURL returns a PostgreSQL connection string (URL or key=value) with
// its passwords masked, so that it can be shown or logged. A URL that does
// not parse is redacted whole: its password cannot be located for sure.
func RedactURL(dsn string) string {
	if !isURL(dsn) {
		return kvPassword.ReplaceAllString(dsn, "${1}"+redactedPassword)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return Redacted
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), redactedPassword)
	}
	if query := u.Query(); hasQueryPassword(query) {
		for key := range query {
			if isPasswordKey(key) {
				query.Set(key, redactedPassword)
			}
		}
		u.RawQuery = query.Encode()
	}
	return u.String()
}

// HasPassword reports whether a connection string carries a password, or
// cannot be parsed well enough to tell (then it is assumed to).
func HasPassword(dsn string) bool {
	if !isURL(dsn) {
		return kvPassword.MatchString(dsn)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return true
	}
	_, has := u.User.Password()
	return has || hasQueryPassword(u.Query())
}

func isURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

func hasQueryPassword(query url.Values) bool {
	for key := range query {
		if isPasswordKey(key) {
			return true
		}
	}
	return false
}

func isPasswordKey(key string) bool {
	key = strings.ToLower(key)
	return key == "password" || key == "sslpassword"
}
