package exchangerouter

import (
	"bytes"
	"encoding/json"
	"errors"
)

// errNotObject means a message is not a JSON object as far as the router
// read it.
var errNotObject = errors.New("not a JSON object")

// field finds the member at path in the JSON object data and returns the
// byte range [start, end) of its value, or found false when some object on
// the path lacks the key. It reads only as far as it must: routing costs
// well under a microsecond, and validating the rest of the message is the
// ingest side's job.
func field(data []byte, path []string) (start, end int, found bool, err error) {
	base := 0
	for depth, key := range path {
		s, e, ok, err := member(data, key)
		if err != nil || !ok {
			return 0, 0, false, err
		}
		if depth == len(path)-1 {
			return base + s, base + e, true, nil
		}
		data = data[s:e]
		base += s
	}
	return 0, 0, false, nil
}

// member finds key among the top-level members of the object data. Like
// the ingest decoders (and encoding/json), a later duplicate of the key
// wins, so the router and the table see the same exchange.
func member(data []byte, key string) (start, end int, found bool, err error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return 0, 0, false, errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return 0, 0, false, nil
	}
	for i < len(data) {
		if data[i] != '"' {
			return 0, 0, false, errNotObject
		}
		keyEnd := skipString(data, i)
		if keyEnd < 0 {
			return 0, 0, false, errNotObject
		}
		match := keyEquals(data[i:keyEnd], key)
		i = skipSpace(data, keyEnd)
		if i >= len(data) || data[i] != ':' {
			return 0, 0, false, errNotObject
		}
		i = skipSpace(data, i+1)
		valueEnd := skipValue(data, i)
		if valueEnd < 0 {
			return 0, 0, false, errNotObject
		}
		if match {
			start, end, found = i, valueEnd, true
		}
		i = skipSpace(data, valueEnd)
		if i >= len(data) {
			break
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return start, end, found, nil
		default:
			return 0, 0, false, errNotObject
		}
	}
	return 0, 0, false, errNotObject
}

// keyEquals compares a quoted JSON key with key, unescaping only when the
// key holds escapes.
func keyEquals(quoted []byte, key string) bool {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner) == key
	}
	var s string
	return json.Unmarshal(quoted, &s) == nil && s == key
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string that starts at data[i],
// or -1 when it is not terminated.
func skipString(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index after the value that starts at data[i], or
// -1 when it is cut short.
func skipValue(data []byte, i int) int {
	if i >= len(data) {
		return -1
	}
	switch data[i] {
	case '"':
		return skipString(data, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				if j = skipString(data, j); j < 0 {
					return -1
				}
				j--
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(data) {
		switch data[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// stringValue returns the contents of the JSON string value v, unescaped
// only when it holds escapes; ok is false when v is not a string.
func stringValue(v []byte) (s []byte, ok bool) {
	if len(v) < 2 || v[0] != '"' {
		return nil, false
	}
	inner := v[1 : len(v)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return inner, true
	}
	var u string
	if json.Unmarshal(v, &u) != nil {
		return nil, false
	}
	return []byte(u), true
}
