package profile

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Entry is one key of the profile as `qiflow profile` shows it: its value,
// secrets redacted, and where the value came from.
type Entry struct {
	Key    string
	Value  string
	Source string
}

// Entries returns every key of the profile, in the documented order.
func (p *Profile) Entries() []Entry {
	entries := make([]Entry, 0, len(keySpecs))
	for _, s := range keySpecs {
		source := "default"
		if o, ok := p.origins[s.key]; ok {
			source = o.source
		}
		entries = append(entries, Entry{Key: s.key, Value: p.shown(s.key), Source: source})
	}
	return entries
}

// Describe writes the profile's name, file and entries as a table.
func (p *Profile) Describe(w io.Writer) error {
	file := p.File
	if file == "" {
		file = "-"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "profile\t%s\t%s\n", p.Name, orDefault(p.nameFrom))
	fmt.Fprintf(tw, "file\t%s\t%s\n", file, orDefault(p.fileFrom))
	fmt.Fprintln(tw)
	fmt.Fprintln(tw, "KEY\tVALUE\tSOURCE")
	for _, e := range p.Entries() {
		value := e.Value
		if value == "" {
			value = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", e.Key, value, e.Source)
	}
	return tw.Flush()
}

func orDefault(from string) string {
	if from == "" {
		return "default"
	}
	return from
}

// shown returns the value of key as `qiflow profile` shows it.
func (p *Profile) shown(key string) string {
	rp, tls, sasl, db := p.Redpanda, p.Redpanda.TLS, p.Redpanda.SASL, p.Database
	switch key {
	case "redpanda.brokers":
		return strings.Join(rp.Brokers, ",")
	case "redpanda.client_id":
		return rp.ClientID
	case "redpanda.dial_timeout":
		return rp.DialTimeout.String()
	case "redpanda.request_timeout":
		return rp.RequestTimeout.String()
	case "redpanda.request_retries":
		return strconv.Itoa(rp.RequestRetries)
	case "redpanda.tls.enabled":
		return strconv.FormatBool(tls.Enabled)
	case "redpanda.tls.skip_cert_verify":
		return strconv.FormatBool(tls.SkipCertVerify)
	case "redpanda.tls.root_cas_file":
		return tls.RootCAsFile
	case "redpanda.tls.client_cert_file":
		return tls.ClientCertFile
	case "redpanda.tls.client_key_file":
		return tls.ClientKeyFile
	case "redpanda.sasl.mechanism":
		return sasl.Mechanism
	case "redpanda.sasl.user":
		return sasl.User
	case "redpanda.sasl.password":
		return sasl.Password.String()
	case "redpanda.sasl.password_file":
		return sasl.PasswordFile
	case "database.url":
		return RedactURL(db.URL.Reveal())
	case "database.password":
		return db.Password.String()
	case "database.password_file":
		return db.PasswordFile
	case "database.pool_size":
		return strconv.Itoa(db.PoolSize)
	case "schema_registry.url":
		return RedactURL(p.SchemaRegistry.URL)
	case "schema_registry.username":
		return p.SchemaRegistry.Username
	case "schema_registry.password":
		return p.SchemaRegistry.Password.String()
	case "schema_registry.password_file":
		return p.SchemaRegistry.PasswordFile
	}
	return ""
}
