package registry

import (
	"github.com/redpanda-data/benthos/v4/public/service"
)

// Field names of a registry connection in a component's config.
const (
	FieldURL      = "url"
	FieldUsername = "username"
	FieldPassword = "password"
	FieldTLS      = "tls"
)

// ConfigFields are the config fields that say where the registry is and how
// to authenticate to it: the one definition of the timescale output's
// schema_registry block and the schema_registry processors' fields.
func ConfigFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField(FieldURL).
			Description("The schema registry's URL (several may be comma-separated). Defaults to the profile's `schema_registry.url` (`SCHEMA_REGISTRY_URL`).").
			Example("http://localhost:8081").
			Optional(),
		service.NewStringField(FieldUsername).
			Description("Basic-auth user. Defaults to the profile's `schema_registry.username` (`SCHEMA_REGISTRY_USERNAME`).").
			Optional(),
		service.NewStringField(FieldPassword).
			Description("Basic-auth password. Defaults to the profile's `schema_registry.password` (`SCHEMA_REGISTRY_PASSWORD`) or `password_file`.").
			Optional().
			Secret(),
		service.NewTLSToggledField(FieldTLS),
	}
}

// ParseConfig reads the fields of ConfigFields from conf, each defaulting
// to the profile's (ProfileConfig). A nil conf gives the profile's alone.
func ParseConfig(conf *service.ParsedConfig) (Config, error) {
	rc, err := ProfileConfig()
	if err != nil || conf == nil {
		return rc, err
	}
	for field, dst := range map[string]*string{FieldURL: &rc.URL, FieldUsername: &rc.Username, FieldPassword: &rc.Password} {
		if !conf.Contains(field) {
			continue
		}
		v, err := conf.FieldString(field)
		if err != nil {
			return rc, err
		}
		if v != "" {
			*dst = v
		}
	}
	tlsConf, enabled, err := conf.FieldTLSToggled(FieldTLS)
	if err != nil {
		return rc, err
	}
	if enabled {
		rc.TLS = tlsConf
	}
	return rc, nil
}
