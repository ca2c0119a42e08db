package mcp

import (
	"errors"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/qicore/qiflow/internal/profile"
)

// redactor keeps secrets out of everything the server sends: tool errors,
// dead-letter headers and the config files it serves as resources. It
// knows the profile's secrets (the database URL and password, the SASL
// password) and masks them wherever they appear, as `qiflow profile` does.
type redactor struct {
	// replacer turns each secret, longest first, into its redacted form.
	replacer *strings.Replacer
}

// newRedactor collects p's secrets. A secret file that cannot be read adds
// nothing: its content cannot leak either.
func newRedactor(p *profile.Profile) redactor {
	var pairs []string
	add := func(secret, shown string) {
		if len(secret) >= 3 {
			pairs = append(pairs, secret, shown)
		}
	}
	dsn := p.Database.URL.Reveal()
	add(dsn, profile.RedactURL(dsn))
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pass, ok := u.User.Password(); ok {
			add(pass, profile.Redacted)
			add(url.QueryEscape(pass), profile.Redacted)
		}
	}
	if s, err := p.Database.ResolvePassword(); err == nil {
		add(s.Reveal(), profile.Redacted)
	}
	if s, err := p.Redpanda.SASL.ResolvePassword(); err == nil {
		add(s.Reveal(), profile.Redacted)
	}
	// Longest first, so that a DSN is replaced whole before its password.
	type pair struct{ secret, shown string }
	ps := make([]pair, 0, len(pairs)/2)
	for i := 0; i < len(pairs); i += 2 {
		ps = append(ps, pair{pairs[i], pairs[i+1]})
	}
	sort.SliceStable(ps, func(i, j int) bool { return len(ps[i].secret) > len(ps[j].secret) })
	flat := make([]string, 0, len(pairs))
	for _, x := range ps {
		flat = append(flat, x.secret, x.shown)
	}
	return redactor{replacer: strings.NewReplacer(flat...)}
}

// text masks the secrets in s, and passwords of any connection string in
// it.
func (r redactor) text(s string) string {
	s = r.replacer.Replace(s)
	return connectionURL.ReplaceAllStringFunc(s, profile.RedactURL)
}

// err returns err with its text masked; nil stays nil.
func (r redactor) err(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(r.text(err.Error()))
}

// connectionURL matches a PostgreSQL URL with a user part, whose password
// RedactURL masks.
var connectionURL = regexp.MustCompile(`postgres(?:ql)?://[^\s"'@/]+@[^\s"']*`)

// secretLine matches a YAML line whose key names a secret or a connection
// string: its value is masked in the configs served as resources.
var secretLine = regexp.MustCompile(`(?im)^(\s*-?\s*(?:[a-z_]*password|[a-z_]*secret|[a-z_]*token|dsn|url|api_key)\s*:\s*)(\S.*)$`)

// yaml masks a config file's secrets: the known ones, and the values of
// keys like password, secret, token, dsn and url (unless they are a
// ${VARIABLE} reference, which names no secret).
func (r redactor) yaml(text string) string {
	text = r.replacer.Replace(text)
	return secretLine.ReplaceAllStringFunc(text, func(line string) string {
		m := secretLine.FindStringSubmatch(line)
		value := strings.Trim(strings.TrimSpace(m[2]), `"'`)
		switch {
		case strings.HasPrefix(value, "${") && strings.HasSuffix(value, "}"):
			return line
		case strings.Contains(strings.ToLower(m[1]), "dsn") || strings.Contains(strings.ToLower(m[1]), "url"):
			if !profile.HasPassword(value) {
				return line
			}
			return m[1] + `"` + profile.RedactURL(value) + `"`
		}
		return m[1] + `"` + profile.Redacted + `"`
	})
}
