package pluginpb

import (
	"encoding/binary"
	"errors"
)

// AppendMetadata appends one key and its value to dst in the metadata
// encoding of processor.proto: each as its length (a uvarint) followed by
// its bytes.
func AppendMetadata(dst []byte, key, value string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = binary.AppendUvarint(dst, uint64(len(value)))
	return append(dst, value...)
}

// errBadMetadata is returned for metadata that is not in the encoding.
var errBadMetadata = errors.New("pluginpb: malformed metadata")

// RangeMetadata calls fn with each key and value of encoded metadata, in
// order, until fn returns false. The slices share b's memory.
func RangeMetadata(b []byte, fn func(key, value []byte) bool) error {
	for len(b) > 0 {
		key, rest, ok := next(b)
		if !ok {
			return errBadMetadata
		}
		value, rest, ok := next(rest)
		if !ok {
			return errBadMetadata
		}
		if !fn(key, value) {
			return nil
		}
		b = rest
	}
	return nil
}

// next splits a length-prefixed field off b.
func next(b []byte) (field, rest []byte, ok bool) {
	n, size := binary.Uvarint(b)
	if size <= 0 || n > uint64(len(b)-size) {
		return nil, nil, false
	}
	end := size + int(n)
	return b[size:end:end], b[end:], true
}
