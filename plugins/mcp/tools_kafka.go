package mcp

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/twmb/franz-go/pkg/kadm"
	"gopkg.in/yaml.v3"
)

type consumerLagIn struct {
	Groups []string `json:"groups,omitempty" jsonschema:"consumer groups to report, e.g. qiflow-prices; default every group"`
	Topic  string   `json:"topic,omitempty" jsonschema:"only this topic's partitions"`
}

type consumerLagOut struct {
	Groups []groupLag `json:"groups"`
}

type groupLag struct {
	Group      string         `json:"group"`
	State      string         `json:"state" jsonschema:"the group's state: Stable, Empty (no member), PreparingRebalance, ..."`
	TotalLag   int64          `json:"total_lag" jsonschema:"messages behind, summed over the partitions"`
	Partitions []partitionLag `json:"partitions"`
	Error      string         `json:"error,omitempty"`
}

type partitionLag struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed int64  `json:"committed" jsonschema:"the group's committed offset, -1 when none"`
	End       int64  `json:"end" jsonschema:"the partition's end offset"`
	Lag       int64  `json:"lag" jsonschema:"end minus committed: messages not yet written; -1 when unknown"`
	Member    string `json:"member,omitempty" jsonschema:"the client consuming the partition, when the group has members"`
	Error     string `json:"error,omitempty"`
}

type topicsStatusIn struct {
	Topics []string `json:"topics,omitempty" jsonschema:"topics to describe; default the topics of topics.yaml, or every topic without it"`
}

type topicsStatusOut struct {
	Topics []topicStatus `json:"topics"`
}

// topicStatus is one topic, in the shape of `qiflow topics status --json`.
type topicStatus struct {
	Topic             string            `json:"topic"`
	Partitions        int               `json:"partitions"`
	ReplicationFactor int               `json:"replication_factor"`
	Configs           map[string]string `json:"configs,omitempty" jsonschema:"the configs topics.yaml names (compression.type, retention.ms, ...)"`
	EndOffsets        map[string]int64  `json:"end_offsets,omitempty" jsonschema:"end offset by partition"`
	Messages          int64             `json:"messages" jsonschema:"the end offsets summed"`
	Lag               map[string]int64  `json:"lag,omitempty" jsonschema:"total lag of each consumer group with offsets in the topic"`
	Err               string            `json:"error,omitempty" jsonschema:"why the topic could not be read, e.g. it does not exist"`
}

// statusConfigs are the configs topics_status shows without topics.yaml,
// as `qiflow topics status` does.
var statusConfigs = []string{"cleanup.policy", "compression.type", "retention.ms"}

func (tb *toolbox) registerKafkaTools(srv *mcp.Server) {
	addTool(tb, srv, &mcp.Tool{
		Name:        "consumer_lag",
		Title:       "Consumer lag per group and partition",
		Description: "Per consumer group and partition: the committed offset, the end offset and the lag (messages consumed by nobody yet). qiflow's groups are qiflow-prices, qiflow-ohlcv and qiflow-analytics. Use it to find the partition that lags.",
		Annotations: readOnly,
	}, tb.consumerLag)
	addTool(tb, srv, &mcp.Tool{
		Name:        "topics_status",
		Title:       "Topics: partitions, configs, offsets, lag",
		Description: "Per topic: partitions, replication factor, the configs topics.yaml names, end offsets, message count and each consumer group's total lag; a missing topic says so. Same answer as `qiflow topics status --json -f topics.yaml`.",
		Annotations: readOnly,
	}, tb.topicsStatus)
	addTool(tb, srv, &mcp.Tool{
		Name:        "dead_letters",
		Title:       "Recent dead letters",
		Description: "The last dead letters of a topic (crypto-prices, or crypto-prices.dlq), newest first, each with why it could not be written (qiflow-error-category, qiflow-error-code, qiflow-error headers), where it came from (source topic, partition, offset) and its original value. Filter by code (e.g. invalid_json, validation) or category (BUSINESS, ...).",
		Annotations: readOnly,
	}, tb.deadLetters)
}

func (tb *toolbox) consumerLag(ctx context.Context, in consumerLagIn) (consumerLagOut, error) {
	adm, err := tb.conns.admin()
	if err != nil {
		return consumerLagOut{}, err
	}
	groups := in.Groups
	if len(groups) == 0 {
		listed, err := adm.ListGroups(ctx)
		if err != nil {
			return consumerLagOut{}, fmt.Errorf("list consumer groups: %w", err)
		}
		groups = listed.Groups()
	}
	out := consumerLagOut{Groups: []groupLag{}}
	if len(groups) == 0 {
		return out, nil
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return consumerLagOut{}, fmt.Errorf("consumer group lag: %w", err)
	}
	for _, l := range lags.Sorted() {
		g := groupLag{Group: l.Group, State: l.State, Partitions: []partitionLag{}}
		if err := l.Error(); err != nil {
			g.Error = err.Error()
		}
		for _, p := range l.Lag.Sorted() {
			if in.Topic != "" && p.Topic != in.Topic {
				continue
			}
			pl := partitionLag{Topic: p.Topic, Partition: p.Partition, Committed: p.Commit.At, End: p.End.Offset, Lag: p.Lag}
			if p.Member != nil {
				pl.Member = p.Member.ClientID + "/" + p.Member.MemberID
			}
			if p.Err != nil {
				pl.Error = p.Err.Error()
			}
			if p.Lag > 0 {
				g.TotalLag += p.Lag
			}
			g.Partitions = append(g.Partitions, pl)
		}
		out.Groups = append(out.Groups, g)
	}
	return out, nil
}

// topicsFile is what topics_status reads of topics.yaml: the names and
// config keys.
type topicsFile struct {
	Topics []struct {
		Name    string            `yaml:"name"`
		Configs map[string]string `yaml:"configs"`
	} `yaml:"topics"`
}

func (tb *toolbox) topicsStatus(ctx context.Context, in topicsStatusIn) (topicsStatusOut, error) {
	names, keys := in.Topics, []string(nil)
	if tb.cfg.TopicsFile != "" {
		raw, err := os.ReadFile(tb.cfg.TopicsFile)
		if err != nil && !os.IsNotExist(err) {
			return topicsStatusOut{}, fmt.Errorf("read topics file: %w", err)
		}
		var f topicsFile
		if err := yaml.Unmarshal(raw, &f); err != nil {
			return topicsStatusOut{}, fmt.Errorf("parse topics file %s: %w", tb.cfg.TopicsFile, err)
		}
		for _, t := range f.Topics {
			if len(in.Topics) == 0 {
				names = append(names, t.Name)
			}
			for k := range t.Configs {
				if !slices.Contains(keys, k) {
					keys = append(keys, k)
				}
			}
		}
	}
	if len(keys) == 0 {
		keys = statusConfigs
	}
	adm, err := tb.conns.admin()
	if err != nil {
		return topicsStatusOut{}, err
	}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return topicsStatusOut{}, fmt.Errorf("list topics: %w", err)
	}
	if len(names) == 0 {
		names = details.Names()
	}
	var present []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			present = append(present, n)
		}
	}
	configs := map[string]map[string]string{}
	ends := kadm.ListedOffsets{}
	if len(present) > 0 {
		rcs, err := adm.DescribeTopicConfigs(ctx, present...)
		if err != nil {
			return topicsStatusOut{}, fmt.Errorf("describe topic configs: %w", err)
		}
		for _, rc := range rcs {
			m := map[string]string{}
			for _, c := range rc.Configs {
				if c.Value != nil {
					m[c.Key] = *c.Value
				}
			}
			configs[rc.Name] = m
		}
		if ends, err = adm.ListEndOffsets(ctx, present...); err != nil {
			return topicsStatusOut{}, fmt.Errorf("list end offsets: %w", err)
		}
	}
	lags, err := groupTopicLags(ctx, adm)
	if err != nil {
		return topicsStatusOut{}, err
	}
	out := topicsStatusOut{Topics: []topicStatus{}}
	for _, name := range names {
		d, ok := details[name]
		st := topicStatus{Topic: name}
		switch {
		case !ok:
			st.Err = "does not exist"
		case d.Err != nil:
			st.Err = d.Err.Error()
		}
		if st.Err != "" {
			out.Topics = append(out.Topics, st)
			continue
		}
		st.Partitions = len(d.Partitions)
		for _, p := range d.Partitions {
			st.ReplicationFactor = max(st.ReplicationFactor, len(p.Replicas))
		}
		st.Configs = map[string]string{}
		for _, k := range keys {
			if v, ok := configs[name][k]; ok {
				st.Configs[k] = v
			}
		}
		st.EndOffsets = map[string]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == name && o.Err == nil {
				st.EndOffsets[strconv.Itoa(int(o.Partition))] = o.Offset
				st.Messages += o.Offset
			}
		})
		for group, byTopic := range lags {
			if lag, ok := byTopic[name]; ok {
				if st.Lag == nil {
					st.Lag = map[string]int64{}
				}
				st.Lag[group] = lag.Lag
			}
		}
		out.Topics = append(out.Topics, st)
	}
	return out, nil
}

// groupTopicLags returns every consumer group's lag by topic.
func groupTopicLags(ctx context.Context, adm *kadm.Client) (map[string]kadm.GroupTopicsLag, error) {
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	out := map[string]kadm.GroupTopicsLag{}
	if len(groups) == 0 {
		return out, nil
	}
	lags, err := adm.Lag(ctx, groups.Groups()...)
	if err != nil {
		return nil, fmt.Errorf("consumer group lag: %w", err)
	}
	for group, l := range lags {
		if l.Error() == nil {
			out[group] = l.Lag.TotalByTopic()
		}
	}
	return out, nil
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
