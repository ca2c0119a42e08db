package result

// Dead-letter headers, a fixed contract (DESIGN.md, Topics). A component
// that fails a message sets them as metadata; the dead-letter output copies
// them as record headers with `metadata: { include_prefixes: [ "qiflow-" ] }`.
const (
	HeaderErrorCategory   = "qiflow-error-category"
	HeaderErrorCode       = "qiflow-error-code"
	HeaderError           = "qiflow-error"
	HeaderSourceTopic     = "qiflow-source-topic"
	HeaderSourcePartition = "qiflow-source-partition"
	HeaderSourceOffset    = "qiflow-source-offset"
)

// sourceHeaders maps each source header to the redpanda input's metadata
// key it is copied from.
var sourceHeaders = [...][2]string{
	{HeaderSourceTopic, "kafka_topic"},
	{HeaderSourcePartition, "kafka_partition"},
	{HeaderSourceOffset, "kafka_offset"},
}

// Metadata is the part of *service.Message that MarkDeadLetter needs.
type Metadata interface {
	MetaGet(key string) (string, bool)
	MetaSetMut(key string, value any)
}

// MarkDeadLetter sets the dead-letter headers on m: the category, code and
// text of err as Classify sees it, and, for a message the redpanda input
// read, the topic, partition and offset it came from. It returns the
// classified error.
func MarkDeadLetter(m Metadata, err error) *Error {
	classified := Classify(err)
	m.MetaSetMut(HeaderErrorCategory, classified.Category.String())
	m.MetaSetMut(HeaderErrorCode, classified.Code)
	m.MetaSetMut(HeaderError, classified.Error())
	for _, h := range sourceHeaders {
		if v, ok := m.MetaGet(h[1]); ok {
			m.MetaSetMut(h[0], v)
		}
	}
	return classified
}
