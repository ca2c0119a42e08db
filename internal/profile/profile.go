// Package profile holds qiflow's environment profiles: per-environment
// defaults for the connections to Redpanda and TimescaleDB (seed brokers,
// client id, timeouts, retries, TLS, SASL, database URL and pool size, the
// schema registry's URL and basic auth). A
// profile is one section of qiflow.yaml, with the environment and flags
// layered over it (docs/profiles.md); Load reads them with koanf.
//
// cmd/qiflow loads the profile once at start and installs it with Set. The
// plugins read it with Current in their constructors and use a value only
// where the pipeline leaves a field out, so an explicit pipeline value
// always wins.
package profile

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// The profiles every qiflow.yaml may define, and the built-in defaults
// define (DESIGN.md: QIFLOW_ENV).
const (
	Development = "development"
	Staging     = "staging"
	Production  = "production"
)

// Names lists the profiles in the order they are documented.
var Names = []string{Development, Staging, Production}

// SASL mechanisms a profile may name; "" means SCRAM-SHA-256 when a user is
// set and no SASL otherwise, as for the redpanda plugins.
const (
	MechanismNone        = "none"
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Profile is the effective configuration of one environment, after every
// layer was applied.
type Profile struct {
	// Name is the section: development, staging or production.
	Name string
	// File is the profile file the section was read from, "" when only the
	// built-in defaults were used.
	File           string
	Redpanda       Redpanda
	Database       Database
	SchemaRegistry SchemaRegistry

	// origins says where each key's value came from, for Entries.
	origins map[string]origin
	// nameFrom and fileFrom say what chose Name and File, for Describe.
	nameFrom, fileFrom string
}

// Redpanda holds the connection defaults of the redpanda input and output.
type Redpanda struct {
	Brokers        []string      `koanf:"brokers"`
	ClientID       string        `koanf:"client_id"`
	DialTimeout    time.Duration `koanf:"dial_timeout"`
	RequestTimeout time.Duration `koanf:"request_timeout"`
	RequestRetries int           `koanf:"request_retries"`
	TLS            TLS           `koanf:"tls"`
	SASL           SASL          `koanf:"sasl"`
}

// TLS configures TLS to the brokers.
type TLS struct {
	Enabled        bool   `koanf:"enabled"`
	SkipCertVerify bool   `koanf:"skip_cert_verify"`
	RootCAsFile    string `koanf:"root_cas_file"`
	ClientCertFile string `koanf:"client_cert_file"`
	ClientKeyFile  string `koanf:"client_key_file"`
}

// SASL configures SASL authentication to the brokers. Of Password and
// PasswordFile at most one is set: Load keeps the one from the higher layer.
type SASL struct {
	Mechanism    string `koanf:"mechanism"`
	User         string `koanf:"user"`
	Password     Secret `koanf:"password"`
	PasswordFile string `koanf:"password_file"`
}

// Database holds the defaults of the timescale output. URL may carry a
// password, so it is a Secret too. Of Password and PasswordFile at most one
// is set.
type Database struct {
	URL          Secret `koanf:"url"`
	Password     Secret `koanf:"password"`
	PasswordFile string `koanf:"password_file"`
	PoolSize     int    `koanf:"pool_size"`
}

// SchemaRegistry holds the defaults of the schema registry that the
// Confluent-framed encodings (avro, protobuf, json_schema) read writer
// schemas from. Of Password and PasswordFile at most one is set.
type SchemaRegistry struct {
	URL          string `koanf:"url"`
	Username     string `koanf:"username"`
	Password     Secret `koanf:"password"`
	PasswordFile string `koanf:"password_file"`
}

// installed is the profile Set installed, or nil.
var installed atomic.Pointer[Profile]

// Set installs p as the process's profile and returns a function that
// restores the previous one. cmd/qiflow calls it once at start; tests call it
// to run plugins under a given profile.
func Set(p *Profile) (restore func()) {
	previous := installed.Swap(p)
	return func() { installed.Store(previous) }
}

// Current returns the profile Set installed. Until something installed one
// (in tests, or a program embedding the plugins), it loads the profile the
// environment describes now, without flags.
func Current() (*Profile, error) {
	if p := installed.Load(); p != nil {
		return p, nil
	}
	return Load(Options{})
}

// Config returns the TLS client configuration, or nil when TLS is off. It
// reads the CA and client certificate files named.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.SkipCertVerify}
	if t.RootCAsFile != "" {
		pem, err := os.ReadFile(t.RootCAsFile)
		if err != nil {
			return nil, fmt.Errorf("redpanda.tls.root_cas_file: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redpanda.tls.root_cas_file: no PEM certificate in %s", t.RootCAsFile)
		}
	}
	if (t.ClientCertFile == "") != (t.ClientKeyFile == "") {
		return nil, errors.New("redpanda.tls: set both client_cert_file and client_key_file, or neither")
	}
	if t.ClientCertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.ClientCertFile, t.ClientKeyFile)
		if err != nil {
			return nil, fmt.Errorf("redpanda.tls client certificate: %w", err)
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	return conf, nil
}

// effectiveMechanism applies the rule of an empty mechanism.
func (s SASL) effectiveMechanism() string {
	switch {
	case s.Mechanism != "":
		return s.Mechanism
	case s.User != "":
		return MechanismScramSHA256
	}
	return MechanismNone
}

// ResolvePassword returns the SASL password: the one of the file named by
// PasswordFile, read now so that a rotated secret is picked up by the next
// pipeline built, or Password.
func (s SASL) ResolvePassword() (Secret, error) {
	return resolveSecret("redpanda.sasl.password_file", s.Password, s.PasswordFile)
}

// ResolvePassword returns the database password, as SASL.ResolvePassword
// does. It is used only when the connection string carries none.
func (d Database) ResolvePassword() (Secret, error) {
	return resolveSecret("database.password_file", d.Password, d.PasswordFile)
}

// ResolvePassword returns the schema registry's basic-auth password, as
// SASL.ResolvePassword does.
func (r SchemaRegistry) ResolvePassword() (Secret, error) {
	return resolveSecret("schema_registry.password_file", r.Password, r.PasswordFile)
}

func resolveSecret(key string, value Secret, file string) (Secret, error) {
	if file == "" {
		return value, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s: %w", key, err)
	}
	secret := strings.TrimRight(string(data), "\r\n")
	if secret == "" {
		return "", fmt.Errorf("%s: %s is empty", key, file)
	}
	return Secret(secret), nil
}

// Check reads what the profile names (secret files, TLS certificates) and
// reports the first that cannot be used.
func (p *Profile) Check() error {
	var errs []error
	if _, err := p.Redpanda.TLS.Config(); err != nil {
		errs = append(errs, err)
	}
	if _, err := p.Redpanda.SASL.ResolvePassword(); err != nil {
		errs = append(errs, err)
	}
	if m := p.Redpanda.SASL.effectiveMechanism(); m != MechanismNone && p.Redpanda.SASL.User == "" {
		errs = append(errs, fmt.Errorf("redpanda.sasl.mechanism is %s but no user is set (REDPANDA_USERNAME or QIFLOW_REDPANDA_SASL_USER)", m))
	}
	if _, err := p.Database.ResolvePassword(); err != nil {
		errs = append(errs, err)
	}
	if _, err := p.SchemaRegistry.ResolvePassword(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// String summarises the profile on one line, secrets redacted.
func (p *Profile) String() string {
	rp := p.Redpanda
	var b strings.Builder
	fmt.Fprintf(&b, "%s: brokers %s", p.Name, strings.Join(rp.Brokers, ","))
	var extras []string
	if rp.TLS.Enabled {
		extras = append(extras, "TLS")
	}
	if m := rp.SASL.effectiveMechanism(); m != MechanismNone {
		extras = append(extras, fmt.Sprintf("SASL %s as %q", m, rp.SASL.User))
	}
	if len(extras) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(extras, ", "))
	}
	fmt.Fprintf(&b, ", database %s (pool %d)", RedactURL(p.Database.URL.Reveal()), p.Database.PoolSize)
	return b.String()
}

// GoString redacts as String does, for %#v.
func (p *Profile) GoString() string { return p.String() }

// LogValue redacts as String does, for log/slog.
func (p *Profile) LogValue() slog.Value { return slog.StringValue(p.String()) }
