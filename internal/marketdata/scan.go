package marketdata

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// scanObject reads one JSON object whose members are looked up by name in
// fields, storing the raw bytes of each found member's value at the same
// index of out. Members not in fields are validated and skipped; a later
// duplicate wins, as with encoding/json. It rejects anything that is not a
// single, valid JSON object.
//
// The wire format is a flat object of strings, numbers and nulls, so one
// pass over the bytes replaces encoding/json's validation pass, reflection
// and allocations: the decoders' largest cost on the hot path.
func scanObject(data []byte, fields []string, out []raw) error {
	s := scanner{data: data}
	hint := 0
	s.space()
	if !s.eat('{') {
		return s.fail("want a JSON object")
	}
	s.space()
	if s.eat('}') {
		return s.end()
	}
	for {
		s.space()
		key, escaped, err := s.str()
		if err != nil {
			return err
		}
		if escaped {
			var k string
			if err := json.Unmarshal(key, &k); err != nil {
				return s.fail("bad key")
			}
			key = []byte(`"` + k + `"`)
		}
		s.space()
		if !s.eat(':') {
			return s.fail("want ':'")
		}
		s.space()
		val, err := s.value()
		if err != nil {
			return err
		}
		name := key[1 : len(key)-1]
		// Producers write the fields in one order, so the field after the
		// last one found is tried first.
		if hint < len(fields) && string(name) == fields[hint] {
			out[hint] = val
			hint++
		} else {
			for i, f := range fields {
				if string(name) == f {
					out[i] = val
					hint = i + 1
					break
				}
			}
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if s.eat('}') {
			return s.end()
		}
		return s.fail("want ',' or '}'")
	}
}

type scanner struct {
	data []byte
	pos  int
}

var errSyntax = errors.New("invalid JSON")

func (s *scanner) fail(why string) error {
	return fmt.Errorf("%w at byte %d: %s", errSyntax, s.pos, why)
}

func (s *scanner) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *scanner) eat(c byte) bool {
	if s.pos < len(s.data) && s.data[s.pos] == c {
		s.pos++
		return true
	}
	return false
}

func (s *scanner) end() error {
	s.space()
	if s.pos != len(s.data) {
		return s.fail("data after the object")
	}
	return nil
}

// str reads a string, quotes included, and reports whether it holds escapes.
func (s *scanner) str() (raw, bool, error) {
	start := s.pos
	if !s.eat('"') {
		return nil, false, s.fail("want a string")
	}
	// The usual string has neither escapes nor control characters: find its
	// closing quote with one IndexByte and check what lies before it.
	if end := bytes.IndexByte(s.data[s.pos:], '"'); end >= 0 {
		plain := true
		for _, c := range s.data[s.pos : s.pos+end] {
			if c < 0x20 || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			s.pos += end + 1
			return s.data[start:s.pos], false, nil
		}
	}
	escaped := false
	for s.pos < len(s.data) {
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			return s.data[start:s.pos], escaped, nil
		case c == '\\':
			escaped = true
			s.pos += 2
		case c < 0x20:
			return nil, false, s.fail("control character in a string")
		default:
			s.pos++
		}
	}
	return nil, false, s.fail("unterminated string")
}

// value reads any JSON value and returns its raw bytes.
func (s *scanner) value() (raw, error) {
	if s.pos >= len(s.data) {
		return nil, s.fail("want a value")
	}
	start := s.pos
	switch c := s.data[s.pos]; {
	case c == '"':
		v, escaped, err := s.str()
		if err == nil && escaped && !json.Valid(v) {
			return nil, s.fail("bad escape in a string")
		}
		return v, err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == '{' || c == '[':
		return s.nested()
	}
	for _, lit := range [][]byte{[]byte("true"), []byte("false"), []byte("null")} {
		if bytes.HasPrefix(s.data[s.pos:], lit) {
			s.pos += len(lit)
			return s.data[start:s.pos], nil
		}
	}
	return nil, s.fail("want a value")
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() (raw, error) {
	start := s.pos
	s.eat('-')
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.eat('0') {
		if s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			return nil, s.fail("leading zero")
		}
	} else if digits() == 0 {
		return nil, s.fail("want a digit")
	}
	if s.eat('.') && digits() == 0 {
		return nil, s.fail("want a digit after '.'")
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return nil, s.fail("want an exponent")
		}
	}
	return s.data[start:s.pos], nil
}

// nested skips an object or array, which the wire format never uses for its
// own fields, and validates it.
func (s *scanner) nested() (raw, error) {
	start, depth := s.pos, 0
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case '"':
			if _, _, err := s.str(); err != nil {
				return nil, err
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
		}
		s.pos++
		if depth == 0 {
			v := s.data[start:s.pos]
			if !json.Valid(v) {
				return nil, s.fail("invalid nested value")
			}
			return v, nil
		}
	}
	return nil, s.fail("unterminated object or array")
}
