package timescale_output

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/result"
)

// fieldOnError names what happens to a message that can never be written.
const fieldOnError = "on_error"

// onError is what the output does with a message that can never be written:
// a BUSINESS error, such as invalid JSON or a value its column refuses.
type onError string

const (
	// onErrorDeadLetter sends it to the dead_letter output, with headers
	// saying why, and moves on.
	onErrorDeadLetter onError = "dead_letter"
	// onErrorFail stops the stream with the message's error.
	onErrorFail onError = "fail"
	// onErrorDrop logs it, counts it and acknowledges it unwritten.
	onErrorDrop onError = "drop"
	// onErrorRetry fails the batch, so that the input replays the message
	// until the cause is fixed; its partition waits meanwhile. It is what an
	// output with neither on_error nor dead_letter does, and `qiflow lint`
	// warns about that.
	onErrorRetry onError = "retry"
)

// onErrorField is the on_error field's spec.
func onErrorField() *service.ConfigField {
	return service.NewStringEnumField(fieldOnError, string(onErrorDeadLetter), string(onErrorFail), string(onErrorDrop), string(onErrorRetry)).
		Description("What happens to a message that can never be written (a BUSINESS error: invalid JSON, a negative price, a value its column refuses): `dead_letter` sends it to the `dead_letter` output with headers saying why; `fail` stops the stream with the message's error (qiflow exits 3); `drop` logs it, counts it in `qiflow_timescale_rows_dropped_total` and acknowledges it unwritten; `retry` fails its batch, so that the input replays it until the cause is fixed, while its partition waits. Defaults to `dead_letter` with a `dead_letter` output and to `retry` without one, which `qiflow lint` warns about.").
		Optional()
}

// onErrorLintRules are the on_error rules of the output's lint, as match
// cases.
const onErrorLintRules = `
  this.on_error.or("") == "dead_letter" && !this.exists("dead_letter") => [ "on_error: dead_letter needs a dead_letter output" ],
  this.exists("dead_letter") && this.on_error.or("dead_letter") != "dead_letter" => [ "dead_letter is used only with on_error: dead_letter; remove one of them" ],`

// parseOnError resolves on_error against the presence of a dead_letter
// output.
func parseOnError(conf *service.ParsedConfig) (onError, error) {
	if !conf.Contains(fieldOnError) {
		if conf.Contains(fieldDeadLetter) {
			return onErrorDeadLetter, nil
		}
		return onErrorRetry, nil
	}
	s, err := conf.FieldString(fieldOnError)
	if err != nil {
		return "", err
	}
	mode := onError(s)
	switch {
	case mode == onErrorDeadLetter && !conf.Contains(fieldDeadLetter):
		return "", fmt.Errorf("%s: %s needs a %s output", fieldOnError, mode, fieldDeadLetter)
	case mode != onErrorDeadLetter && conf.Contains(fieldDeadLetter):
		return "", fmt.Errorf("%s is used only with %s: %s", fieldDeadLetter, fieldOnError, onErrorDeadLetter)
	}
	return mode, nil
}

// errDeleted marks a message whose mapping deleted it (`deleted()`): it is
// acknowledged without a row, as Benthos outputs do with deleted messages.
var errDeleted = errors.New("the mapping deleted the message")

// takeDeleted removes the deleted messages from failed and returns how
// many there were.
func takeDeleted(failed map[int]error) int64 {
	var n int64
	for i, err := range failed {
		if errors.Is(err, errDeleted) {
			delete(failed, i)
			n++
		}
	}
	return n
}

// handleFailures settles the messages that can never be written, as
// on_error says.
func (o *output) handleFailures(ctx context.Context, batch service.MessageBatch, failed map[int]error) error {
	indexes := slices.Sorted(maps.Keys(failed))
	switch o.conf.onError {
	case onErrorDeadLetter:
		if err := o.writeDeadLetters(ctx, batch, failed); err != nil {
			return batchError(batch, indexes, func(int) error { return err })
		}
		o.metrics.deadLetters(failed)
		return nil
	case onErrorDrop:
		for _, i := range indexes {
			o.log.Warnf("Dropping message %d of the batch for %s (on_error: drop)%s: %v", i, o.conf.table.Sanitize(), source(batch[i]), failed[i])
		}
		o.metrics.dropped(failed)
		return nil
	case onErrorFail:
		first := failed[indexes[0]]
		classified := result.Classify(first)
		o.stop(result.Wrap(classified.Category, classified.Code, first,
			fmt.Sprintf("on_error: fail: a message for %s cannot be written%s", o.conf.table.Sanitize(), source(batch[indexes[0]]))))
	}
	return batchError(batch, indexes, func(i int) error { return failed[i] })
}

// batchError fails the messages at indexes, each with errOf's error.
func batchError(batch service.MessageBatch, indexes []int, errOf func(int) error) error {
	batchErr := service.NewBatchError(batch, errOf(indexes[0]))
	for _, i := range indexes {
		batchErr.Failed(i, errOf(i))
	}
	return batchErr
}

// source names where a message came from, for a log line: " (topic/partition
// at offset)", or "" for a message no redpanda input read.
func source(msg *service.Message) string {
	topic, ok := msg.MetaGet("kafka_topic")
	if !ok {
		return ""
	}
	partition, _ := msg.MetaGet("kafka_partition")
	offset, _ := msg.MetaGet("kafka_offset")
	return fmt.Sprintf(" (%s/%s at offset %s)", topic, partition, offset)
}
