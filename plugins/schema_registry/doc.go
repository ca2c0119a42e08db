// Package schemaregistry decodes and encodes Confluent-framed Avro, Protobuf
// and JSON Schema payloads through a schema registry. (Being built: issue 14.)
package schemaregistry

import (
	_ "github.com/bufbuild/protocompile"
	_ "github.com/hamba/avro/v2"
	_ "github.com/santhosh-tekuri/jsonschema/v6"
	_ "github.com/twmb/avro"
	_ "github.com/twmb/franz-go/pkg/sr"
)
