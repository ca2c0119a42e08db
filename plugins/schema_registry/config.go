package schemaregistry

import (
	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/registry"
)

// Field names of the registry connection, shared by both processors.
const (
	fieldURL      = "url"
	fieldUser     = "username"
	fieldPassword = "password"
	fieldTLS      = "tls"
)

// registryFields are the fields that say where the registry is and how to
// authenticate to it.
func registryFields() []*service.ConfigField {
	return []*service.ConfigField{
		service.NewStringField(fieldURL).
			Description("The schema registry's URL (several may be comma-separated). Defaults to the profile's `schema_registry.url` (`SCHEMA_REGISTRY_URL`).").
			Optional(),
		service.NewStringField(fieldUser).
			Description("Basic-auth user. Defaults to the profile's `schema_registry.username` (`SCHEMA_REGISTRY_USERNAME`).").
			Optional(),
		service.NewStringField(fieldPassword).
			Description("Basic-auth password. Defaults to the profile's `schema_registry.password` (`SCHEMA_REGISTRY_PASSWORD`) or `password_file`.").
			Optional().
			Secret(),
		service.NewTLSToggledField(fieldTLS),
	}
}

// parseRegistryConfig reads the registry fields, with the profile's
// schema_registry (and so SCHEMA_REGISTRY_*) as defaults.
func parseRegistryConfig(conf *service.ParsedConfig) (registry.Config, error) {
	rc, err := registry.ProfileConfig()
	if err != nil {
		return rc, err
	}
	for field, dst := range map[string]*string{fieldURL: &rc.URL, fieldUser: &rc.Username, fieldPassword: &rc.Password} {
		if conf.Contains(field) {
			v, err := conf.FieldString(field)
			if err != nil {
				return rc, err
			}
			if v != "" {
				*dst = v
			}
		}
	}
	tlsConf, enabled, err := conf.FieldTLSToggled(fieldTLS)
	if err != nil {
		return rc, err
	}
	if enabled {
		rc.TLS = tlsConf
	}
	return rc, nil
}
