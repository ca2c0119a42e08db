package registry

import (
	"encoding/binary"
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
	// CodeSchemaViolation: a JSON Schema payload breaks its writer schema.
	CodeSchemaViolation = "schema_violation"
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
// in the Confluent wire format (a zigzag varint count, 0 meaning the first
// message, then the indexes) into buf, and returns them and the message
// bytes. It allocates only for a path longer than buf.
func SplitIndexes(payload []byte, buf []int) ([]int, []byte, error) {
	count, n := binary.Varint(payload)
	if n <= 0 {
		return nil, nil, result.New(result.Business, CodeInvalidFrame, "Protobuf message indexes are missing or malformed")
	}
	payload = payload[n:]
	if count == 0 {
		return append(buf[:0], 0), payload, nil
	}
	if count < 0 || count > maxIndexes {
		return nil, nil, result.New(result.Business, CodeInvalidFrame, fmt.Sprintf("Protobuf message index count %d is out of range", count))
	}
	indexes := buf[:0]
	for range count {
		idx, n := binary.Varint(payload)
		if n <= 0 {
			return nil, nil, result.New(result.Business, CodeInvalidFrame, "Protobuf message indexes are truncated")
		}
		indexes = append(indexes, int(idx))
		payload = payload[n:]
	}
	return indexes, payload, nil
}

// maxIndexes bounds the depth of a Protobuf message index path.
const maxIndexes = 16

// AppendIndexes appends the Confluent message indexes of path to b.
func AppendIndexes(b []byte, path ...int) []byte {
	if len(path) == 1 && path[0] == 0 {
		return append(b, 0)
	}
	b = binary.AppendVarint(b, int64(len(path)))
	for _, i := range path {
		b = binary.AppendVarint(b, int64(i))
	}
	return b
}

// AppendFrame appends the Confluent header of schema id to b.
func AppendFrame(b []byte, id int) []byte {
	return append(b, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}
