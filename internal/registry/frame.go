package registry

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/qicore/qiflow/internal/result"
)

// Codes of the BUSINESS errors of Confluent-framed payloads.
const (
	// CodeInvalidFrame: not the Confluent wire format (wrong magic byte, or
	// shorter than its 5-byte header or its Protobuf message indexes).
	CodeInvalidFrame = "invalid_frame"
	// CodeUnknownSchema: the registry says it has no schema of that id.
	CodeUnknownSchema = "unknown_schema"
	// CodeUnsupportedSchema: the schema cannot be read as the message kind
	// (not a record, not a schema of the configured encoding, ...).
	CodeUnsupportedSchema = "unsupported_schema"
	// CodeInvalidPayload: the bytes after the header do not decode by the
	// writer schema (truncated, corrupt, trailing bytes).
	CodeInvalidPayload = "invalid_payload"
)

var header sr.ConfluentHeader

// SplitFrame reads the Confluent wire-format header of data: magic byte 0
// and a big-endian 4-byte schema id. It returns the id and the payload that
// follows, which aliases data.
func SplitFrame(data []byte) (id int, payload []byte, err error) {
	if len(data) == 0 || data[0] != 0 {
		return 0, nil, result.New(result.Business, CodeInvalidFrame, frameWhy(data))
	}
	id, payload, err = header.DecodeID(data)
	if err != nil {
		return 0, nil, result.Wrap(result.Business, CodeInvalidFrame, err, "message is shorter than the 5-byte Confluent header")
	}
	return id, payload, nil
}

func frameWhy(data []byte) string {
	if len(data) == 0 {
		return "message is empty, want the Confluent wire format (magic byte 0, 4-byte schema id)"
	}
	return fmt.Sprintf("magic byte is 0x%02x, want 0x00 (the Confluent wire format)", data[0])
}

// SplitIndexes reads the Protobuf message indexes that follow the header
// in the Confluent wire format, and returns them and the message bytes.
func SplitIndexes(payload []byte) ([]int, []byte, error) {
	indexes, rest, err := header.DecodeIndex(payload, 16)
	if err != nil {
		return nil, nil, result.Wrap(result.Business, CodeInvalidFrame, err, "bad Protobuf message indexes")
	}
	return indexes, rest, nil
}

// AppendFrame appends the Confluent header of schema id to b.
func AppendFrame(b []byte, id int) []byte {
	return append(b, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}
