// Package registry reads schemas from a Confluent-compatible schema registry
// (Redpanda's built-in one, Confluent's, Apicurio's compatibility API) by id,
// through franz-go's pkg/sr, and keeps each schema compiled for the life of
// the process: a schema id never changes its schema.
//
// Lookups are classified as qiflow's error taxonomy wants them: a registry
// that cannot be reached (connection refused, timeouts, HTTP 5xx) is
// TRANSIENT and retried, so that good messages are never dead-lettered
// because the registry blinked; an id the registry answers "not found" for
// is a BUSINESS fault of the messages that carry it; rejected credentials
// are SECURITY and stop the pipeline.
package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/profile"
	"github.com/qicore/qiflow/internal/result"
)

// Config says where the registry is and how to authenticate to it.
type Config struct {
	// URL is the registry's base URL; several may be comma-separated.
	URL string
	// Username and Password are HTTP basic auth, when Username is set.
	Username, Password string
	// TLS is the client TLS configuration, or nil for the system's.
	TLS *tls.Config
	// Timeout bounds one request; zero means 10s.
	Timeout time.Duration
}

// Reader decodes the payloads written with one schema into rows of a
// message kind (marketdata.Kind.Columns order), validated by the wire
// format's rules. It is safe for concurrent use.
type Reader interface {
	DecodeRow(payload []byte, row []datum.Datum) error
}

// Compile turns a schema from the registry into a Reader, or returns why
// it cannot be read; its error is cached as the schema's permanent fault.
type Compile func(ctx context.Context, cl *sr.Client, s sr.Schema) (Reader, error)

// Registry is a client with a cache of compiled schemas by id.
type Registry struct {
	client  *sr.Client
	compile Compile

	// mu guards schemas. An entry, once stored, never changes.
	mu      sync.RWMutex
	schemas map[int]entry
}

// entry is a compiled schema, or the BUSINESS error of an id that has none.
type entry struct {
	reader Reader
	err    error
}

// New returns a registry client that compiles schemas with compile.
func New(conf Config, compile Compile) (*Registry, error) {
	if conf.URL == "" {
		return nil, errors.New("schema registry: no URL (set the component's url field, SCHEMA_REGISTRY_URL, or the profile's schema_registry.url)")
	}
	timeout := conf.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = conf.TLS
	opts := []sr.ClientOpt{
		sr.URLs(splitURLs(conf.URL)...),
		sr.HTTPClient(&http.Client{Timeout: timeout, Transport: transport}),
		sr.UserAgent("qiflow"),
	}
	if conf.Username != "" {
		opts = append(opts, sr.BasicAuth(conf.Username, conf.Password))
	}
	cl, err := sr.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry: %w", err)
	}
	return &Registry{client: cl, compile: compile, schemas: map[int]entry{}}, nil
}

// Client is the underlying franz-go client, for registering schemas.
func (r *Registry) Client() *sr.Client { return r.client }

// Reader returns the compiled schema of id, if Load has loaded it: the
// Reader, or the BUSINESS error of an id without a usable schema. ok is
// false for an id not loaded yet.
func (r *Registry) Reader(id int) (reader Reader, err error, ok bool) {
	r.mu.RLock()
	e, ok := r.schemas[id]
	r.mu.RUnlock()
	return e.reader, e.err, ok
}

// Load fetches and compiles the schemas of ids that are not cached yet.
// A registry that cannot be reached is retried: wait is called before each
// retry with the attempt number and returns an error to give up (the
// stream stops, the context ends), which Load returns. A SECURITY error
// (HTTP 401, 403) is returned at once.
func (r *Registry) Load(ctx context.Context, ids []int, wait func(ctx context.Context, attempt int, err error) error) error {
	for _, id := range ids {
		if _, _, ok := r.Reader(id); ok {
			continue
		}
		for attempt := 1; ; attempt++ {
			e, err := r.fetch(ctx, id)
			if err == nil {
				r.mu.Lock()
				r.schemas[id] = e
				r.mu.Unlock()
				break
			}
			if classified := result.Classify(err); !classified.Transient {
				return err
			}
			if werr := wait(ctx, attempt, err); werr != nil {
				return fmt.Errorf("schema id %d: %w (last error: %v)", id, werr, err)
			}
		}
	}
	return nil
}

// fetch reads and compiles one schema. Its entry holds a BUSINESS error
// for an id the registry does not know or a schema that does not compile;
// its error is a failure to ask (TRANSIENT or SECURITY).
func (r *Registry) fetch(ctx context.Context, id int) (entry, error) {
	s, err := r.client.SchemaByID(ctx, id)
	if err != nil {
		err = lookupError(ctx, err, fmt.Sprintf("schema id %d", id))
		if result.Classify(err).Category == result.Business {
			return entry{err: err}, nil
		}
		return entry{}, err
	}
	reader, err := r.compile(ctx, r.client, s)
	if err != nil {
		// Only a lookup (of a reference) that says so is retried: a schema
		// that does not compile is a permanent fault of its id, though an
		// unclassified error would classify as transient.
		var typed *result.Error
		if errors.As(err, &typed) && (typed.Transient || typed.Category == result.Security) {
			return entry{}, err
		}
		return entry{err: result.Wrap(result.Business, CodeUnsupportedSchema, err, fmt.Sprintf("schema id %d", id))}, nil
	}
	return entry{reader: reader}, nil
}

// lookupError classifies a failed registry lookup of what: "not found" is
// a BUSINESS fault of the messages that need it, rejected credentials are
// SECURITY, and anything else (unreachable, 5xx, timeouts) is TRANSIENT.
func lookupError(ctx context.Context, err error, what string) error {
	var re *sr.ResponseError
	switch {
	case errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || sr.IsNotFoundError(re.ErrorCode)):
		return result.Wrap(result.Business, CodeUnknownSchema, err, what+" is not in the registry")
	case errors.As(err, &re) && (re.StatusCode == http.StatusUnauthorized || re.StatusCode == http.StatusForbidden):
		return result.Wrap(result.Security, "schema_registry_auth", err, "schema registry refused the credentials")
	case ctx.Err() != nil:
		return ctx.Err()
	}
	return result.Wrap(result.External, "schema_registry_unavailable", err, "look up "+what).AsTransient()
}

func splitURLs(s string) []string {
	var urls []string
	for _, u := range strings.Split(s, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// ProfileConfig is the registry of the process's profile (docs/profiles.md:
// schema_registry.*, with SCHEMA_REGISTRY_URL, SCHEMA_REGISTRY_USERNAME and
// SCHEMA_REGISTRY_PASSWORD as its variables): the defaults of every
// component's registry fields. A password file is read now, so that a
// rotated secret is picked up by the next pipeline built.
func ProfileConfig() (Config, error) {
	p, err := profile.Current()
	if err != nil {
		return Config{}, err
	}
	password, err := p.SchemaRegistry.ResolvePassword()
	if err != nil {
		return Config{}, err
	}
	return Config{URL: p.SchemaRegistry.URL, Username: p.SchemaRegistry.Username, Password: password.Reveal()}, nil
}
