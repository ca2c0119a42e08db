// Package pluginsdk is the SDK for qiflow plugins: programs that process
// batches of messages for qiflow's external processor, in a process of their
// own, so that a plugin that crashes or hangs cannot take a pipeline or its
// messages down with it.
//
// A plugin is a main package that implements Processor and calls Serve:
//
//	func main() { pluginsdk.Serve(&normalizer{}) }
//
// It may also implement Configurer, to receive the `config` field of its
// external processor, HealthChecker, to take part in qiflow's periodic
// health check, and io.Closer, to release what it holds when qiflow stops
// it. qiflow checks which of these a Processor implements, as franz-go does
// with its hooks.
//
// Build the plugin as qiflow-plugin-<name> into qiflow's plugin directory
// (QIFLOW_PLUGIN_DIR, ./plugins.d by default) and name it in a pipeline:
//
//	pipeline:
//	  processors:
//	    - external:
//	        plugin: <name>
//	        config: { any: yaml }
//
// qiflow starts the plugin when it builds the pipeline, restarts it with
// backoff when it crashes, hangs past the processor's timeout or fails its
// health check, and retries the batch that was in flight on the new process.
// A plugin built against an SDK that speaks another ProtocolVersion is
// refused at startup with a message that says which versions each side
// speaks. docs/plugins.md in the qiflow repository has the whole story.
package pluginsdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/qicore/qiflow/pkg/pluginsdk/pluginpb"
)

// ProtocolVersion is the version of the plugin protocol this SDK speaks.
// qiflow refuses a plugin whose version it does not speak, and says which
// versions each side speaks; rebuilding the plugin against the SDK of the
// qiflow release it runs under fixes that.
const ProtocolVersion = pluginpb.ProtocolVersion

// Processor is the one interface a plugin must implement.
type Processor interface {
	// ProcessBatch processes the messages of a batch in place: it may change
	// each message's Payload and Metadata, fail a message alone with
	// Message.Fail, or remove it with Message.Drop. A message it leaves
	// untouched continues unchanged. The batch keeps its order.
	//
	// An error fails the whole batch for a reason that may pass, such as a
	// dependency of the plugin being down: qiflow hands the messages back to
	// its input, which retries them later. Return one only for that; a
	// problem with a message is Message.Fail.
	//
	// qiflow may call ProcessBatch concurrently, once per pipeline thread.
	// ctx ends when the processor's timeout passes; a call that outlives it
	// gets its process killed and its batch retried on a new one. A panic
	// fails only the messages that cause it (see Serve).
	ProcessBatch(ctx context.Context, batch []*Message) error
}

// Configurer is implemented by a Processor that takes configuration.
// qiflow calls Configure once per plugin process, before the first batch,
// with the `config` field of the external processor. An error stops the
// plugin from starting: qiflow reports it, and refuses to start the
// pipeline when it happens at startup.
type Configurer interface {
	Configure(ctx context.Context, config Config) error
}

// HealthChecker is implemented by a Processor that can tell whether it is
// fit to work, for instance whether the service it enriches from answers.
// qiflow calls CheckHealth every health_interval; an error, or no answer
// within health_timeout, gets the plugin killed and restarted. A Processor
// without it is healthy as long as its process answers.
type HealthChecker interface {
	CheckHealth(ctx context.Context) error
}

// Config is the `config` field of a plugin's external processor, as JSON:
// any YAML the pipeline gives, `{}` when it gives none.
type Config []byte

// Decode decodes the configuration into v, which should be a pointer to a
// struct with json tags. A key that v has no field for is an error, so a
// misspelt option fails at startup instead of being ignored.
func (c Config) Decode(v any) error {
	dec := json.NewDecoder(bytes.NewReader(c))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode plugin config: %w", err)
	}
	return nil
}

// Message is one message of a batch.
type Message struct {
	// Payload is the message's content, such as a JSON object.
	Payload []byte
	// Metadata is the message's metadata: for a message from the redpanda
	// input, its Kafka key (kafka_key), topic, partition, offset, timestamp
	// and headers. ProcessBatch may add, change and delete keys; qiflow
	// applies the result. It is never nil.
	Metadata map[string]string

	err     error
	dropped bool
}

// Fail marks the message as failed for a reason of its own, such as a
// payload that is not JSON. It continues down the pipeline unchanged, with
// its original payload and metadata, as a BUSINESS error, which qiflow's
// pipelines send to the topic's dead-letter topic with err's text. If err
// has a method Code() string (see WithCode), its result becomes the
// qiflow-error-code header; otherwise the code is "plugin_rejected". A nil
// err is ignored.
func (m *Message) Fail(err error) {
	if err != nil {
		m.err = err
	}
}

// Err returns the error the message was failed with, or nil.
func (m *Message) Err() error { return m.err }

// Drop removes the message from the pipeline: it is acknowledged to its
// input as done and goes no further. Use it for messages the pipeline is
// meant to ignore, such as heartbeats.
func (m *Message) Drop() { m.dropped = true }

// Dropped reports whether Drop was called.
func (m *Message) Dropped() bool { return m.dropped }

// WithCode returns err with a machine-readable code, such as
// "invalid_json", for Message.Fail. qiflow puts the code in the
// qiflow-error-code header of the dead letter. The result wraps err.
func WithCode(err error, code string) error {
	if err == nil {
		return nil
	}
	return &codedError{code: code, err: err}
}

type codedError struct {
	code string
	err  error
}

func (e *codedError) Error() string { return e.err.Error() }
func (e *codedError) Unwrap() error { return e.err }
func (e *codedError) Code() string  { return e.code }

// errorCode returns the code of a failed message's error.
func errorCode(err error) string {
	if c, ok := errors.AsType[interface {
		error
		Code() string
	}](err); ok && c.Code() != "" {
		return c.Code()
	}
	return "plugin_rejected"
}
