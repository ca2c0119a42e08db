package exchangerouter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/topics"
)

// defaultReplicationFactor is used when a topic spec leaves it out; it is
// capped at the cluster's broker count.
const defaultReplicationFactor = 3

// topicSpec is one topic of a topics file (pipelines/topics.yaml).
type topicSpec struct {
	Name              string            `yaml:"name"`
	Partitions        int32             `yaml:"partitions"`
	ReplicationFactor int16             `yaml:"replication_factor"`
	Configs           map[string]string `yaml:"configs"`
}

// topicsFile is a topics file: the topics qiflow needs and their settings.
type topicsFile struct {
	Topics []topicSpec `yaml:"topics"`
}

// loadTopics reads and checks a topics file.
func loadTopics(path string) (*topicsFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topics file: %w", err)
	}
	var f topicsFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse topics file %s: %w", path, err)
	}
	seen := map[string]bool{}
	var problems []error
	for i := range f.Topics {
		t := &f.Topics[i]
		switch {
		case t.Name == "":
			return nil, fmt.Errorf("%s: topic %d has no name", path, i+1)
		case seen[t.Name]:
			return nil, fmt.Errorf("%s: topic %s appears twice", path, t.Name)
		case t.Partitions < 1:
			return nil, fmt.Errorf("%s: topic %s: partitions must be at least 1", path, t.Name)
		case t.ReplicationFactor < 0:
			return nil, fmt.Errorf("%s: topic %s: replication_factor must be positive", path, t.Name)
		}
		if t.ReplicationFactor == 0 {
			t.ReplicationFactor = defaultReplicationFactor
		}
		for _, key := range sortedKeys(t.Configs) {
			if err := topics.ValidateConfig(key, t.Configs[key]); err != nil {
				problems = append(problems, fmt.Errorf("%s: topic %s: configs: %w", path, t.Name, err))
			}
		}
		seen[t.Name] = true
	}
	if len(f.Topics) == 0 {
		return nil, fmt.Errorf("%s: no topics", path)
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return &f, nil
}

func (f *topicsFile) names() []string {
	names := make([]string, len(f.Topics))
	for i, t := range f.Topics {
		names[i] = t.Name
	}
	return names
}

// Outcomes of applying a topic spec.
const (
	outcomeCreated   = "created"
	outcomeUnchanged = "unchanged"
	outcomeDiffers   = "differs"
	// outcomeChanged is an existing topic whose partitions apply raised to
	// the spec's, with --allow-partition-increase.
	outcomeChanged = "changed"
)

// topicOutcome says what applying one topic spec did, or, for a topic that
// differs from its spec, how: apply changes an existing topic only to raise
// its partitions when allowed.
type topicOutcome struct {
	Topic   string   `json:"topic"`
	Outcome string   `json:"outcome"`
	Details []string `json:"details,omitempty"`
	// Warnings say what apply did other than the spec asks (replication
	// capped at the broker count) or what a change means for readers.
	Warnings []string `json:"warnings,omitempty"`
}

func (o topicOutcome) String() string {
	s := fmt.Sprintf("%-24s %s", o.Topic, o.Outcome)
	if len(o.Details) > 0 {
		s += ": " + strings.Join(o.Details, "; ")
	}
	for _, w := range o.Warnings {
		s += "\n  WARNING: " + w
	}
	return s
}

// applyOptions change what applyTopics may do to existing topics.
type applyOptions struct {
	// allowPartitionIncrease raises an existing topic's partitions to the
	// spec's. Partitions are never decreased: Kafka cannot.
	allowPartitionIncrease bool
}

// keyedPlacementWarning is what raising partitions means for keyed records.
const keyedPlacementWarning = "keyed placement changes: records of a key produced from now on may go to a different partition than its earlier records, so per-key order holds only within each side of the change"

// applyTopics creates the topics of f that are missing, with replication
// capped at the broker count (and says so), raises partitions of existing
// topics when allowed, and reports existing topics whose partitions,
// replication or configs differ from f without changing them otherwise.
func applyTopics(ctx context.Context, adm *kadm.Client, f *topicsFile, opts applyOptions) ([]topicOutcome, error) {
	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return nil, fmt.Errorf("read cluster metadata: %w", err)
	}
	brokers := int16(max(len(meta.Brokers), 1))
	existing, err := adm.ListTopics(ctx, f.names()...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	configs, err := describeConfigs(ctx, adm, existing)
	if err != nil {
		return nil, err
	}
	var outcomes []topicOutcome
	for _, spec := range f.Topics {
		replicas := min(spec.ReplicationFactor, brokers)
		var capped []string
		if replicas < spec.ReplicationFactor {
			capped = []string{fmt.Sprintf("replication capped at %d: the spec asks %d and the cluster has %d broker(s)", replicas, spec.ReplicationFactor, brokers)}
		}
		detail, ok := existing[spec.Name]
		if !ok || errors.Is(detail.Err, kerr.UnknownTopicOrPartition) {
			if err := createTopic(ctx, adm, spec, replicas); err != nil {
				return outcomes, err
			}
			outcomes = append(outcomes, topicOutcome{Topic: spec.Name, Outcome: outcomeCreated,
				Details:  []string{fmt.Sprintf("%d partitions, replication %d", spec.Partitions, replicas)},
				Warnings: capped})
			continue
		}
		if detail.Err != nil {
			return outcomes, fmt.Errorf("describe topic %s: %w", spec.Name, detail.Err)
		}
		// changed lists what apply did to the topic; differs what it left
		// unlike the spec.
		var changed, differs []string
		outcome := topicOutcome{Topic: spec.Name, Outcome: outcomeUnchanged, Warnings: capped}
		switch n := int32(len(detail.Partitions)); {
		case n < spec.Partitions && opts.allowPartitionIncrease:
			if err := raisePartitions(ctx, adm, spec); err != nil {
				return outcomes, err
			}
			changed = append(changed, fmt.Sprintf("partitions: %d → %d", n, spec.Partitions))
			outcome.Warnings = append(outcome.Warnings, keyedPlacementWarning)
		case n < spec.Partitions:
			differs = append(differs, fmt.Sprintf("partitions: %d, spec %d (--allow-partition-increase raises them)", n, spec.Partitions))
		case n > spec.Partitions:
			differs = append(differs, fmt.Sprintf("partitions: %d, spec %d (partitions can never be decreased: recreate the topic to have fewer)", n, spec.Partitions))
		}
		if rf := replicationOf(detail); rf != int(replicas) {
			differs = append(differs, fmt.Sprintf("replication: %d, spec %d", rf, replicas))
		}
		for _, key := range sortedKeys(spec.Configs) {
			want := spec.Configs[key]
			if got, ok := configs[spec.Name][key]; !ok || got != want {
				if !ok {
					got = "unset"
				}
				differs = append(differs, fmt.Sprintf("%s: %s, spec %s", key, got, want))
			}
		}
		switch {
		case len(differs) > 0:
			outcome.Outcome = outcomeDiffers
		case len(changed) > 0:
			outcome.Outcome = outcomeChanged
		}
		outcome.Details = append(changed, differs...)
		outcomes = append(outcomes, outcome)
	}
	return outcomes, nil
}

func createTopic(ctx context.Context, adm *kadm.Client, spec topicSpec, replicas int16) error {
	configs := make(map[string]*string, len(spec.Configs))
	for k, v := range spec.Configs {
		configs[k] = &v
	}
	resp, err := adm.CreateTopic(ctx, spec.Partitions, replicas, configs, spec.Name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		if resp.ErrMessage != "" {
			err = fmt.Errorf("%w: %s", err, resp.ErrMessage)
		}
		return fmt.Errorf("create topic %s: %w", spec.Name, err)
	}
	return nil
}

// raisePartitions raises a topic's partition count to the spec's.
func raisePartitions(ctx context.Context, adm *kadm.Client, spec topicSpec) error {
	resp, err := adm.UpdatePartitions(ctx, int(spec.Partitions), spec.Name)
	if err == nil {
		var r kadm.CreatePartitionsResponse
		if r, err = resp.On(spec.Name, nil); err == nil {
			err = r.Err
			if err != nil && r.ErrMessage != "" {
				err = fmt.Errorf("%w: %s", err, r.ErrMessage)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("raise partitions of %s to %d: %w", spec.Name, spec.Partitions, err)
	}
	return nil
}

// describeConfigs returns the configs of the topics that exist, by topic
// and key.
func describeConfigs(ctx context.Context, adm *kadm.Client, topics kadm.TopicDetails) (map[string]map[string]string, error) {
	var names []string
	for name, d := range topics {
		if d.Err == nil {
			names = append(names, name)
		}
	}
	out := map[string]map[string]string{}
	if len(names) == 0 {
		return out, nil
	}
	resources, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	for _, r := range resources {
		if r.Err != nil {
			return nil, fmt.Errorf("describe configs of %s: %w", r.Name, r.Err)
		}
		m := map[string]string{}
		for _, c := range r.Configs {
			if c.Value != nil {
				m[c.Key] = *c.Value
			}
		}
		out[r.Name] = m
	}
	return out, nil
}

// replicationOf is the replica count of a topic's first partition.
func replicationOf(d kadm.TopicDetail) int {
	for _, p := range d.Partitions {
		return len(p.Replicas)
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// statusConfigs are the configs status shows when no spec names others.
var statusConfigs = []string{"cleanup.policy", "compression.type", "retention.ms"}

// topicStatus is what `qiflow topics status` shows of one topic.
type topicStatus struct {
	Topic             string            `json:"topic"`
	Partitions        int               `json:"partitions"`
	ReplicationFactor int               `json:"replication_factor"`
	Configs           map[string]string `json:"configs"`
	// EndOffsets are the partitions' end offsets; Messages is their sum.
	EndOffsets map[int32]int64 `json:"end_offsets"`
	Messages   int64           `json:"messages"`
	// Lag is the total lag of each consumer group with offsets in the topic.
	Lag map[string]int64 `json:"lag,omitempty"`
	// Err says why the topic could not be read, e.g. it does not exist.
	Err string `json:"error,omitempty"`
}

// topicsStatus describes the named topics, or every topic that is not
// internal when names is empty.
func topicsStatus(ctx context.Context, adm *kadm.Client, names []string, configKeys []string) ([]topicStatus, error) {
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	if len(names) == 0 {
		names = details.Names()
	}
	configs, err := describeConfigs(ctx, adm, details)
	if err != nil {
		return nil, err
	}
	var present []string
	for _, n := range names {
		if d, ok := details[n]; ok && d.Err == nil {
			present = append(present, n)
		}
	}
	ends := kadm.ListedOffsets{}
	if len(present) > 0 {
		if ends, err = adm.ListEndOffsets(ctx, present...); err != nil {
			return nil, fmt.Errorf("list end offsets: %w", err)
		}
	}
	lags, err := groupLags(ctx, adm)
	if err != nil {
		return nil, err
	}
	if len(configKeys) == 0 {
		configKeys = statusConfigs
	}
	var out []topicStatus
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
			out = append(out, st)
			continue
		}
		st.Partitions, st.ReplicationFactor = len(d.Partitions), replicationOf(d)
		st.Configs = map[string]string{}
		for _, k := range configKeys {
			if v, ok := configs[name][k]; ok {
				st.Configs[k] = v
			}
		}
		st.EndOffsets = map[int32]int64{}
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == name && o.Err == nil {
				st.EndOffsets[o.Partition] = o.Offset
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
		out = append(out, st)
	}
	return out, nil
}

// groupLags returns every consumer group's lag by topic.
func groupLags(ctx context.Context, adm *kadm.Client) (map[string]kadm.GroupTopicsLag, error) {
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

func (s topicStatus) String() string {
	if s.Err != "" {
		return fmt.Sprintf("%s: %s\n", s.Topic, s.Err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d partitions, replication %d, %d messages\n", s.Topic, s.Partitions, s.ReplicationFactor, s.Messages)
	for _, k := range sortedKeys(s.Configs) {
		fmt.Fprintf(&b, "  %s=%s\n", k, s.Configs[k])
	}
	ends := make([]string, 0, len(s.EndOffsets))
	for p := range int32(s.Partitions) {
		ends = append(ends, fmt.Sprintf("%d:%d", p, s.EndOffsets[p]))
	}
	fmt.Fprintf(&b, "  end offsets %s\n", strings.Join(ends, " "))
	for _, g := range sortedKeys(s.Lag) {
		fmt.Fprintf(&b, "  group %s lag %d\n", g, s.Lag[g])
	}
	return b.String()
}

// LintTopicsFile checks a topics file as `qiflow topics apply` reads it,
// without contacting a cluster.
func LintTopicsFile(path string) error {
	_, err := loadTopics(path)
	return err
}
