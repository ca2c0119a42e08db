package profile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/env/v2"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	yamlv3 "gopkg.in/yaml.v3"
)

// Environment variables that choose the profile and its file.
const (
	EnvProfile = "QIFLOW_ENV"
	EnvFile    = "QIFLOW_CONFIG"
)

// DefaultFile is the profile file looked for in the working directory.
const DefaultFile = "qiflow.yaml"

// fileNone is why no profile file was read.
const fileNone = "none: built-in defaults"

// Options are what Load reads besides the profile file: the flags of
// cmd/qiflow and, for tests, the environment and working directory.
type Options struct {
	// Name is the profile, from --profile; empty means QIFLOW_ENV, then
	// development.
	Name string
	// File is the profile file, from --profile-file; empty means
	// QIFLOW_CONFIG, then ./qiflow.yaml when it exists, then none.
	File string
	// Sets are --profile-set KEY=VALUE overrides, applied in order.
	Sets []string
	// Environ returns the environment as os.Environ does; nil means
	// os.Environ.
	Environ func() []string
	// Dir is where qiflow.yaml is looked for; empty means the working
	// directory.
	Dir string
}

// origin is where a key's value came from: its layer's rank (higher wins)
// and a description for `qiflow profile`.
type origin struct {
	rank   int
	source string
}

// layer is one source of values, flat keys to values of the kind of their
// spec, each with a description of where it came from.
type layer struct {
	values  map[string]any
	sources map[string]string
}

func newLayer() layer {
	return layer{values: map[string]any{}, sources: map[string]string{}}
}

// Load builds the profile, each layer overriding the ones before it:
//
//  1. the built-in defaults of the profile;
//  2. its section of the profile file;
//  3. the DESIGN.md variables (REDPANDA_BROKERS, DATABASE_URL, ...);
//  4. QIFLOW_ variables (QIFLOW_REDPANDA_BROKERS, ...);
//  5. --profile-set flags.
//
// Empty environment variables count as unset. Of a password and its
// password_file, the one from the higher layer is kept.
func Load(o Options) (*Profile, error) {
	return load(o, true)
}

// Builtin returns a built-in profile, as Load does without a file,
// environment or flags.
func Builtin(name string) (*Profile, error) {
	return load(Options{Name: name, Environ: func() []string { return nil }}, false)
}

// load is Load; without lookFile it reads no profile file at all.
func load(o Options, lookFile bool) (*Profile, error) {
	environ := o.Environ
	if environ == nil {
		environ = os.Environ
	}
	vars := envMap(environ())
	p := &Profile{origins: map[string]origin{}}

	switch {
	case o.Name != "":
		p.Name, p.nameFrom = o.Name, "flag --profile"
	case vars[EnvProfile] != "":
		p.Name, p.nameFrom = vars[EnvProfile], "env "+EnvProfile
	default:
		p.Name, p.nameFrom = Development, "default"
	}
	if !slices.Contains(Names, p.Name) {
		return nil, fmt.Errorf("unknown profile %q (%s): want %s", p.Name, p.nameFrom, strings.Join(Names, ", "))
	}

	layers := []layer{builtinLayer(p.Name)}
	p.fileFrom = fileNone
	if lookFile {
		path, from, err := findFile(o, vars)
		if err != nil {
			return nil, err
		}
		p.File, p.fileFrom = path, from
	}
	if p.File != "" {
		l, err := fileLayer(p.File, p.Name)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	contract, err := contractLayer(environ)
	if err != nil {
		return nil, err
	}
	qiflow, err := qiflowLayer(environ)
	if err != nil {
		return nil, err
	}
	flags, err := flagLayer(o.Sets)
	if err != nil {
		return nil, err
	}
	layers = append(layers, contract, qiflow, flags)

	k := koanf.New(".")
	for rank, l := range layers {
		if err := k.Load(confmap.Provider(l.values, "."), nil); err != nil {
			return nil, fmt.Errorf("merge profile values: %w", err)
		}
		for key, source := range l.sources {
			p.origins[key] = origin{rank: rank, source: source}
		}
	}
	for _, pair := range [][2]string{{keySASLPassword, keySASLPasswordFile}, {keyDBPassword, keyDBPasswordFile}, {keySRPassword, keySRPasswordFile}} {
		if err := p.keepHigher(k, pair[0], pair[1]); err != nil {
			return nil, err
		}
	}
	if err := k.Unmarshal("redpanda", &p.Redpanda); err != nil {
		return nil, fmt.Errorf("profile %s: redpanda: %w", p.Name, err)
	}
	if err := k.Unmarshal("database", &p.Database); err != nil {
		return nil, fmt.Errorf("profile %s: database: %w", p.Name, err)
	}
	if err := k.Unmarshal("schema_registry", &p.SchemaRegistry); err != nil {
		return nil, fmt.Errorf("profile %s: schema_registry: %w", p.Name, err)
	}
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("profile %s: %w", p.Name, err)
	}
	return p, nil
}

// keepHigher keeps, of a secret and the file holding it, the one set by
// the higher layer, and clears the other.
func (p *Profile) keepHigher(k *koanf.Koanf, secretKey, fileKey string) error {
	if k.String(secretKey) == "" || k.String(fileKey) == "" {
		return nil
	}
	secret, file := p.origins[secretKey], p.origins[fileKey]
	switch {
	case secret.rank == file.rank:
		return fmt.Errorf("profile %s: %s and %s are both set (%s); set one", p.Name, secretKey, fileKey, secret.source)
	case secret.rank > file.rank:
		p.origins[fileKey] = origin{rank: secret.rank, source: "unused: " + secretKey + " is set higher up"}
		return k.Set(fileKey, "")
	default:
		p.origins[secretKey] = origin{rank: file.rank, source: "unused: " + fileKey + " is set higher up"}
		return k.Set(secretKey, "")
	}
}

// validate checks what the kinds cannot: ranges and required values.
func (p *Profile) validate() error {
	rp, db := p.Redpanda, p.Database
	checks := []struct {
		key string
		bad bool
		msg string
	}{
		{"redpanda.brokers", len(rp.Brokers) == 0, "at least one broker is required"},
		{"redpanda.client_id", rp.ClientID == "", "must not be empty"},
		{"redpanda.dial_timeout", rp.DialTimeout <= 0, "must be positive"},
		{"redpanda.request_timeout", rp.RequestTimeout <= 0, "must be positive"},
		{"redpanda.request_retries", rp.RequestRetries < 0, "must not be negative"},
		{"database.url", db.URL == "", "must not be empty"},
		{"database.pool_size", db.PoolSize < 1, "must be at least 1"},
	}
	for _, c := range checks {
		if c.bad {
			return fmt.Errorf("%s (%s): %s", c.key, p.origins[c.key].source, c.msg)
		}
	}
	return nil
}

// findFile returns the profile file to read and what chose it, or "" when
// there is none.
func findFile(o Options, vars map[string]string) (path, from string, err error) {
	switch {
	case o.File != "":
		return o.File, "flag --profile-file", nil
	case vars[EnvFile] != "":
		return vars[EnvFile], "env " + EnvFile, nil
	}
	path = "./" + DefaultFile
	if o.Dir != "" {
		path = filepath.Join(o.Dir, DefaultFile)
	}
	switch _, err := os.Stat(path); {
	case err == nil && !isProfileFile(path):
		return "", path + " is a pipeline, not a profile file; ignored", nil
	case err == nil:
		return path, "found in the working directory", nil
	case errors.Is(err, fs.ErrNotExist):
		return "", fileNone, nil
	default:
		return "", "", fmt.Errorf("profile file %s: %w", path, err)
	}
}

// isProfileFile reports whether the YAML file at path may be a profile file:
// anything but a pipeline (input, pipeline or output at the top, and no
// profile section). A file found only by its name, not named by a flag or
// QIFLOW_CONFIG, is read only then: a pipeline that happens to be called
// qiflow.yaml must not break every command.
func isProfileFile(path string) bool {
	raw, err := os.ReadFile(path)
	if err != nil {
		return true // let the read report it
	}
	var top map[string]any
	if yamlv3.Unmarshal(raw, &top) != nil {
		return true // let the parser report it
	}
	has := func(k string) bool { _, ok := top[k]; return ok }
	return slices.ContainsFunc(Names, has) || !slices.ContainsFunc([]string{"input", "pipeline", "output"}, has)
}

func builtinLayer(name string) layer {
	l := newLayer()
	for key, v := range builtin[name] {
		l.values[key] = v
		l.sources[key] = "default"
	}
	return l
}

// fileLayer reads the section name of the profile file at path. The file
// holds development, staging and production sections only, and each
// section only known keys: a typo is an error, not a silent default.
func fileLayer(path, name string) (layer, error) {
	k := koanf.New(".")
	if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
		return layer{}, fmt.Errorf("profile file %s: %w", path, err)
	}
	for top := range k.Raw() {
		if !slices.Contains(Names, top) {
			return layer{}, fmt.Errorf("profile file %s: unknown section %q: want %s", path, top, strings.Join(Names, ", "))
		}
	}
	l := newLayer()
	source := fmt.Sprintf("file %s (%s)", path, name)
	for key, raw := range k.Cut(name).All() {
		if m, ok := raw.(map[string]any); raw == nil || ok && len(m) == 0 {
			continue
		}
		spec, ok := specOf(key)
		if !ok {
			return layer{}, fmt.Errorf("profile file %s: %s.%s: unknown key (see docs/profiles.md)", path, name, key)
		}
		v, err := spec.normalize(raw)
		if err != nil {
			return layer{}, fmt.Errorf("profile file %s: %s.%s: %w", path, name, key, err)
		}
		l.values[key], l.sources[key] = v, source
	}
	return l, nil
}

// contractLayer reads the DESIGN.md variables.
func contractLayer(environ func() []string) (layer, error) {
	names := map[string]keySpec{}
	for _, s := range keySpecs {
		if s.contract != "" {
			names[s.contract] = s
		}
	}
	return envLayer(environ, "", names, nil)
}

// qiflowLayer reads the QIFLOW_ variables of the keys. An unknown variable
// under QIFLOW_REDPANDA_ or QIFLOW_DATABASE_ is an error: it is a typo.
func qiflowLayer(environ func() []string) (layer, error) {
	names := map[string]keySpec{}
	for _, s := range keySpecs {
		names[EnvName(s.key)] = s
	}
	var unknown []string
	l, err := envLayer(environ, "QIFLOW_", names, func(name string) {
		if strings.HasPrefix(name, "QIFLOW_REDPANDA_") || strings.HasPrefix(name, "QIFLOW_DATABASE_") {
			unknown = append(unknown, name)
		}
	})
	if err != nil {
		return l, err
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return l, fmt.Errorf("unknown variable %s (see docs/profiles.md for the QIFLOW_ variables)", strings.Join(unknown, ", "))
	}
	return l, nil
}

// envLayer reads the variables of names with koanf's env provider; empty
// ones count as unset. Variables with the prefix that are not in names go to
// other, when given.
func envLayer(environ func() []string, prefix string, names map[string]keySpec, other func(string)) (layer, error) {
	varOf := map[string]string{}
	provider := env.Provider("", env.Opt{
		Prefix:      prefix,
		EnvironFunc: environ,
		TransformFunc: func(name, value string) (string, any) {
			spec, ok := names[name]
			if !ok {
				if other != nil {
					other(name)
				}
				return "", nil
			}
			if value == "" {
				return "", nil
			}
			varOf[spec.key] = name
			return spec.key, value
		},
	})
	raw, err := provider.Read()
	if err != nil {
		return layer{}, fmt.Errorf("read the environment: %w", err)
	}
	l := newLayer()
	for key, value := range raw {
		spec, _ := specOf(key)
		v, err := spec.normalize(value)
		if err != nil {
			return layer{}, fmt.Errorf("%s: %w", varOf[key], err)
		}
		l.values[key], l.sources[key] = v, "env "+varOf[key]
	}
	return l, nil
}

// flagLayer reads --profile-set KEY=VALUE flags. Secrets are refused: a
// command line shows in ps and at /debug/pprof/cmdline.
func flagLayer(sets []string) (layer, error) {
	l := newLayer()
	for _, set := range sets {
		key, value, ok := strings.Cut(set, "=")
		if !ok {
			return layer{}, fmt.Errorf("--profile-set %q: want KEY=VALUE", set)
		}
		key = strings.TrimSpace(key)
		spec, known := specOf(key)
		if !known {
			return layer{}, fmt.Errorf("--profile-set %s: unknown key (see docs/profiles.md)", key)
		}
		if spec.kind == kindSecret || spec.kind == kindURL && HasPassword(value) {
			return layer{}, fmt.Errorf("--profile-set %s: secrets are not taken from flags, which show in ps and at /debug/pprof/cmdline; use %s or a password_file", key, EnvName(key))
		}
		v, err := spec.normalize(value)
		if err != nil {
			return layer{}, fmt.Errorf("--profile-set %s: %w", key, err)
		}
		l.values[key], l.sources[key] = v, "flag --profile-set"
	}
	return l, nil
}

// envMap turns an environment list into a map; the last value of a
// repeated name wins, as for os.Getenv.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		if name, value, ok := strings.Cut(kv, "="); ok {
			m[name] = value
		}
	}
	return m
}
