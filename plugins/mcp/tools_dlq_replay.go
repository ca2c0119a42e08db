package mcp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/qicore/qiflow/plugins/dlq"
)

// Bounds of dlq_replay: how long it may read and produce, and how many
// letter ids a dry run lists.
const (
	dlqReplayTimeout = 5 * time.Minute
	maxListedLetters = 500
)

type dlqReplayIn struct {
	Topic      string   `json:"topic" jsonschema:"the dead-letter topic (crypto-prices.dlq) or the topic whose dead letters to redrive (crypto-prices)"`
	Codes      []string `json:"codes,omitempty" jsonschema:"only letters with one of these qiflow-error-code values, e.g. invalid_value"`
	Categories []string `json:"categories,omitempty" jsonschema:"only letters with one of these qiflow-error-category values, e.g. BUSINESS"`
	Since      string   `json:"since,omitempty" jsonschema:"only letters dead-lettered at or after this RFC 3339 time"`
	Until      string   `json:"until,omitempty" jsonschema:"only letters dead-lettered before this RFC 3339 time"`
	Partition  *int32   `json:"partition,omitempty" jsonschema:"only this partition of the dead-letter topic"`
	Offset     *int64   `json:"offset,omitempty" jsonschema:"only the letter at this offset (with partition)"`
	DryRun     bool     `json:"dry_run,omitempty" jsonschema:"list what would be redriven and send nothing; do this first"`
}

type dlqReplayOut struct {
	Topic    string   `json:"topic" jsonschema:"the dead-letter topic read"`
	DryRun   bool     `json:"dry_run"`
	Redriven int      `json:"redriven" jsonschema:"letters sent back to their source topic (with dry_run: that would be)"`
	Letters  []string `json:"letters" jsonschema:"the letters redriven, as topic/partition/offset (the first 500)"`
	Skipped  []string `json:"skipped" jsonschema:"letters without a qiflow-source-topic header, which cannot be redriven"`
}

func (tb *toolbox) registerDLQReplayTool(srv *mcp.Server) {
	addWriteTool(tb, srv, &mcp.Tool{
		Name:  "dlq_replay",
		Title: "Redrive dead letters to their source topic",
		Description: "Sends the selected dead letters of a topic back to the topic and partition they were consumed from, key and value byte for byte, as `qiflow dlq replay` does; the pipeline then writes them again (its writes are idempotent, so a second redrive adds no rows). " +
			"Fix the cause first (a wider column, a corrected mapping): a letter that fails again is dead-lettered again. " +
			"Select with codes, categories, since/until or partition/offset, and call with dry_run first to see what would go. The dead-letter topic itself is not changed.",
	}, tb.dlqReplay)
}

func (tb *toolbox) dlqReplay(ctx context.Context, in dlqReplayIn) (dlqReplayOut, error) {
	topic := strings.TrimSpace(in.Topic)
	if topic == "" {
		return dlqReplayOut{}, fmt.Errorf("topic is required, e.g. crypto-prices.dlq")
	}
	if !strings.HasSuffix(topic, dlqSuffix) {
		topic += dlqSuffix
	}
	filter := dlq.Filter{Codes: in.Codes, Categories: in.Categories, Partition: -1, Offset: -1}
	var err error
	if filter.Since, err = optionalTime("since", in.Since); err != nil {
		return dlqReplayOut{}, err
	}
	if filter.Until, err = optionalTime("until", in.Until); err != nil {
		return dlqReplayOut{}, err
	}
	if in.Partition != nil {
		if *in.Partition < 0 {
			return dlqReplayOut{}, fmt.Errorf("partition %d: must not be negative", *in.Partition)
		}
		filter.Partition = *in.Partition
	}
	if in.Offset != nil {
		if in.Partition == nil || *in.Offset < 0 {
			return dlqReplayOut{}, fmt.Errorf("offset selects one letter: give a partition with it, and an offset of 0 or more")
		}
		filter.Offset = *in.Offset
	}
	cl, err := tb.conns.newKafkaClient(dlq.ClientOptions()...)
	if err != nil {
		return dlqReplayOut{}, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(ctx, dlqReplayTimeout)
	defer cancel()
	out := dlqReplayOut{Topic: topic, DryRun: in.DryRun, Letters: []string{}}
	rep, err := dlq.Redrive(ctx, cl, topic, filter, in.DryRun, func(l *dlq.Letter, skipped error) {
		if skipped == nil && len(out.Letters) < maxListedLetters {
			out.Letters = append(out.Letters, l.ID())
		}
	})
	if err != nil {
		return dlqReplayOut{}, fmt.Errorf("redrive %s: %w", topic, err)
	}
	out.Redriven, out.Skipped = rep.Redriven, rep.Skipped
	return out, nil
}

// optionalTime parses an RFC 3339 time, or none.
func optionalTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time such as 2026-12-04T10:00:00Z", field, s)
	}
	return t, nil
}
