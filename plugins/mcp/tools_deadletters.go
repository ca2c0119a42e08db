package mcp

import (
	"context"
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Dead-letter headers (DESIGN.md: Topics).
const (
	headerCategory        = "qiflow-error-category"
	headerCode            = "qiflow-error-code"
	headerError           = "qiflow-error"
	headerSourceTopic     = "qiflow-source-topic"
	headerSourcePartition = "qiflow-source-partition"
	headerSourceOffset    = "qiflow-source-offset"
)

// dlqSuffix names a topic's dead-letter topic.
const dlqSuffix = ".dlq"

// Bounds of dead_letters: how many it returns, and how many records of each
// partition's tail it reads to find them.
const (
	defaultDeadLetters = 20
	maxDeadLetters     = 500
	deadLetterScan     = 10_000
	deadLetterTimeout  = 30 * time.Second
	deadLetterIdle     = 5 * time.Second
)

type deadLettersIn struct {
	Topic    string `json:"topic" jsonschema:"the dead-letter topic (crypto-prices.dlq) or the topic whose dead letters to read (crypto-prices)"`
	Limit    int    `json:"limit,omitempty" jsonschema:"how many, newest first; default 20, at most 500"`
	Code     string `json:"code,omitempty" jsonschema:"only this qiflow-error-code, e.g. invalid_json"`
	Category string `json:"category,omitempty" jsonschema:"only this qiflow-error-category, e.g. BUSINESS"`
}

type deadLettersOut struct {
	Topic       string       `json:"topic" jsonschema:"the dead-letter topic read"`
	Scanned     int          `json:"scanned" jsonschema:"records read (the last 10000 of each partition at most)"`
	Matched     int          `json:"matched" jsonschema:"records matching the filters among those read"`
	DeadLetters []deadLetter `json:"dead_letters" jsonschema:"newest first"`
}

type deadLetter struct {
	Partition       int32             `json:"partition"`
	Offset          int64             `json:"offset"`
	Timestamp       time.Time         `json:"timestamp"`
	Category        string            `json:"category" jsonschema:"qiflow-error-category: BUSINESS, SECURITY, ..."`
	Code            string            `json:"code" jsonschema:"qiflow-error-code"`
	Error           string            `json:"error" jsonschema:"qiflow-error: why the message could not be written"`
	SourceTopic     string            `json:"source_topic,omitempty"`
	SourcePartition *int32            `json:"source_partition,omitempty"`
	SourceOffset    *int64            `json:"source_offset,omitempty"`
	Key             string            `json:"key,omitempty"`
	Headers         map[string]string `json:"headers" jsonschema:"every header of the record"`
	Value           string            `json:"value" jsonschema:"the original message, as it arrived"`
	ValueEncoding   string            `json:"value_encoding" jsonschema:"utf-8, or base64 for a value that is not text"`
}

func (tb *toolbox) deadLetters(ctx context.Context, in deadLettersIn) (deadLettersOut, error) {
	limit, err := bounded("limit", in.Limit, defaultDeadLetters, maxDeadLetters)
	if err != nil {
		return deadLettersOut{}, err
	}
	topic := strings.TrimSpace(in.Topic)
	if topic == "" {
		return deadLettersOut{}, fmt.Errorf("topic is required, e.g. crypto-prices.dlq")
	}
	if !strings.HasSuffix(topic, dlqSuffix) {
		topic += dlqSuffix
	}
	ctx, cancel := context.WithTimeout(ctx, deadLetterTimeout)
	defer cancel()
	adm, err := tb.conns.admin()
	if err != nil {
		return deadLettersOut{}, err
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		return deadLettersOut{}, fmt.Errorf("start offsets of %s: %w", topic, err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return deadLettersOut{}, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	if err := ends.Error(); err != nil {
		return deadLettersOut{}, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	from := map[int32]kgo.Offset{}
	remaining := map[int32]int64{} // partition → its end offset, until read
	ends.Each(func(o kadm.ListedOffset) {
		start := o.Offset - deadLetterScan
		if s, ok := starts.Lookup(topic, o.Partition); ok && s.Offset > start {
			start = s.Offset
		}
		if start < o.Offset {
			from[o.Partition] = kgo.NewOffset().At(start)
			remaining[o.Partition] = o.Offset
		}
	})
	out := deadLettersOut{Topic: topic, DeadLetters: []deadLetter{}}
	if len(from) == 0 {
		return out, nil
	}
	cl, err := tb.conns.newKafkaClient(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}))
	if err != nil {
		return deadLettersOut{}, err
	}
	defer cl.Close()
	var found []deadLetter
	for len(remaining) > 0 {
		// A partition whose last offsets hold no record (a transaction
		// marker, say) never shows its end: a poll that stays idle ends
		// the read with what came.
		pollCtx, pollCancel := context.WithTimeout(ctx, deadLetterIdle)
		fetches := cl.PollFetches(pollCtx)
		pollCancel()
		if ctx.Err() != nil {
			return deadLettersOut{}, fmt.Errorf("read %s: %d partition(s) not read to their end within %s", topic, len(remaining), deadLetterTimeout)
		}
		if pollCtx.Err() != nil && fetches.NumRecords() == 0 {
			break
		}
		if err := fetches.Err0(); err != nil {
			return deadLettersOut{}, fmt.Errorf("read %s: %w", topic, err)
		}
		fetches.EachRecord(func(r *kgo.Record) {
			end, open := remaining[r.Partition]
			if !open {
				return
			}
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			out.Scanned++
			dl := tb.deadLetterOf(r)
			if (in.Code != "" && dl.Code != in.Code) || (in.Category != "" && !strings.EqualFold(dl.Category, in.Category)) {
				return
			}
			found = append(found, dl)
		})
	}
	sort.SliceStable(found, func(i, j int) bool {
		if !found[i].Timestamp.Equal(found[j].Timestamp) {
			return found[i].Timestamp.After(found[j].Timestamp)
		}
		return found[i].Offset > found[j].Offset
	})
	out.Matched = len(found)
	out.DeadLetters = append(out.DeadLetters, found[:min(limit, len(found))]...)
	return out, nil
}

// deadLetterOf reads a dead-letter record, its error text redacted.
func (tb *toolbox) deadLetterOf(r *kgo.Record) deadLetter {
	dl := deadLetter{Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(), Key: string(r.Key), Headers: map[string]string{}}
	for _, h := range r.Headers {
		v := tb.redact.text(string(h.Value))
		dl.Headers[h.Key] = v
		switch h.Key {
		case headerCategory:
			dl.Category = v
		case headerCode:
			dl.Code = v
		case headerError:
			dl.Error = v
		case headerSourceTopic:
			dl.SourceTopic = v
		case headerSourcePartition:
			if p, err := strconv.ParseInt(v, 10, 32); err == nil {
				p32 := int32(p)
				dl.SourcePartition = &p32
			}
		case headerSourceOffset:
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				dl.SourceOffset = &o
			}
		}
	}
	if utf8.Valid(r.Value) {
		dl.Value, dl.ValueEncoding = string(r.Value), "utf-8"
	} else {
		dl.Value, dl.ValueEncoding = base64.StdEncoding.EncodeToString(r.Value), "base64"
	}
	return dl
}
