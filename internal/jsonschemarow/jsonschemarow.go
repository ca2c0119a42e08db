// Package jsonschemarow reads Confluent JSON Schema payloads into the rows
// of a market-data message kind.
//
// A JSON Schema payload is a JSON document, so once its writer schema has
// accepted it, it is decoded by the JSON wire format's own decoder
// (marketdata.Kind.DecodeInto): the same exact decimals from the JSON
// digits, the same rules and the same error codes as an unframed JSON
// message. What this package adds is the writer's contract: each payload
// is validated against the schema it names (santhosh-tekuri/jsonschema,
// with numbers kept as json.Number so that validating never rounds), and
// one that breaks it is refused with the schema keyword and the place in
// the document, rather than written.
package jsonschemarow

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/result"
)

// Codes of the BUSINESS errors of JSON Schema payloads; they equal
// registry's codes of the same names.
const (
	// CodeInvalidPayload: the bytes after the header are not one JSON
	// document.
	CodeInvalidPayload = "invalid_payload"
	// CodeSchemaViolation: the document breaks its writer schema.
	CodeSchemaViolation = "schema_violation"
)

// base is the location the registry's schemas are compiled at; the names of
// their references resolve against it, as a registry client resolves them.
const base = "https://schema-registry.invalid/"

// Source is one schema document: the writer schema, or one it references
// by Name.
type Source struct {
	Name, Text string
}

// Reader decodes the payloads of one writer schema into a kind's rows. It
// is safe for concurrent use.
type Reader struct {
	schema *jsonschema.Schema
	kind   *marketdata.Kind
}

// Compile compiles a writer schema and the schemas it references. Schemas
// without "$schema" are read as draft-07, the default of Confluent's
// serializers; nothing is fetched from the network or the file system.
// A schema whose documents cannot be objects is refused: the wire format
// is one object per message.
func Compile(schema string, refs []Source, kind *marketdata.Kind) (*Reader, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.UseLoader(jsonschema.SchemeURLLoader{})
	for _, ref := range refs {
		doc, err := parse(ref.Text)
		if err != nil {
			return nil, fmt.Errorf("reference %s: %w", ref.Name, err)
		}
		if err := c.AddResource(resolve(ref.Name), doc); err != nil {
			return nil, fmt.Errorf("reference %s: %w", ref.Name, err)
		}
	}
	doc, err := parse(schema)
	if err != nil {
		return nil, err
	}
	if err := objectSchema(doc); err != nil {
		return nil, err
	}
	loc := base + "schema.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, err
	}
	compiled, err := c.Compile(loc)
	if err != nil {
		return nil, err
	}
	return &Reader{schema: compiled, kind: kind}, nil
}

// DecodeRow validates payload against the writer schema and decodes it
// into row, in the kind's Columns order.
func (r *Reader) DecodeRow(payload []byte, row []datum.Datum) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return result.Wrap(result.Business, CodeInvalidPayload, err, "the payload is not one JSON document")
	}
	if err := r.schema.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if errors.As(err, &ve) {
			return result.New(result.Business, CodeSchemaViolation, "the payload breaks its writer schema: "+violations(ve))
		}
		return result.Wrap(result.Business, CodeSchemaViolation, err, "the payload breaks its writer schema")
	}
	return r.kind.DecodeInto(payload, row)
}

// parse reads a schema document, keeping its numbers exact.
func parse(text string) (any, error) {
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("is not JSON: %w", err)
	}
	return doc, nil
}

// resolve is a reference's location: its name against base, as "$ref"
// values resolve, or the name itself when it is an absolute URL.
func resolve(name string) string {
	if u, err := url.Parse(name); err == nil && u.IsAbs() {
		return name
	}
	return base + strings.TrimPrefix(name, "/")
}

// objectSchema refuses a root schema whose "type" excludes objects.
func objectSchema(doc any) error {
	root, ok := doc.(map[string]any)
	if !ok {
		return nil // true or false: nothing to say about its type
	}
	switch t := root["type"].(type) {
	case nil:
		return nil
	case string:
		if t == "object" {
			return nil
		}
	case []any:
		for _, v := range t {
			if v == "object" {
				return nil
			}
		}
	}
	return fmt.Errorf(`its root "type" is %v, and a market-data message is an object`, root["type"])
}

// english prints the validator's messages.
var english = message.NewPrinter(language.English)

// violations lists the leaf errors of a validation error on one line, each
// at its place in the document, at most three.
func violations(ve *jsonschema.ValidationError) string {
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			leaves = append(leaves, fmt.Sprintf("at /%s: %s", strings.Join(e.InstanceLocation, "/"), e.ErrorKind.LocalizedString(english)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > 3 {
		leaves = append(leaves[:3], fmt.Sprintf("and %d more", len(leaves)-3))
	}
	return strings.Join(leaves, "; ")
}
