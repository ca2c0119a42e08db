package main

import "encoding/json"

// scanObject reads msg, which must be exactly one JSON object, in one pass,
// keeping the raw values of the price fields in f. Other members are
// validated and skipped; of a repeated member the last wins, as with
// encoding/json.
func scanObject(msg []byte, f *fields) error {
	s := scanner{data: msg}
	s.space()
	if !s.eat('{') {
		return s.fail("want an object")
	}
	s.space()
	if s.eat('}') {
		return s.end()
	}
	for {
		s.space()
		key, err := s.value()
		if err != nil {
			return err
		}
		if key.kind != kindString {
			return s.fail("want a member name")
		}
		s.space()
		if !s.eat(':') {
			return s.fail("want ':'")
		}
		s.space()
		v, err := s.value()
		if err != nil {
			return err
		}
		name := key.raw
		if key.escaped {
			var k string
			if json.Unmarshal(append(append([]byte{'"'}, key.raw...), '"'), &k) != nil {
				return s.fail("bad member name")
			}
			name = []byte(k)
		}
		if slot := f.slot(name); slot != nil {
			*slot = v
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

// slot is where the member named name goes, or nil for other members.
func (f *fields) slot(name []byte) *value {
	switch string(name) {
	case "lastUpdated":
		return &f.lastUpdated
	case "coinId":
		return &f.coinID
	case "symbol":
		return &f.symbol
	case "exchangeId":
		return &f.exchangeID
	case "usdPrice":
		return &f.usdPrice
	case "source":
		return &f.source
	case "attribution":
		return &f.attribution
	case "marketCap":
		return &f.marketCap
	case "volume24h":
		return &f.volume24h
	case "change24h":
		return &f.change24h
	case "change7d":
		return &f.change7d
	}
	return nil
}

type scanner struct {
	data []byte
	pos  int
}

func (s *scanner) fail(why string) error {
	return reject(codeInvalidJSON, "not a JSON object: %s at byte %d", why, s.pos)
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

// value reads one JSON value of any kind.
func (s *scanner) value() (value, error) {
	if s.pos >= len(s.data) {
		return value{}, s.fail("want a value")
	}
	switch c := s.data[s.pos]; {
	case c == '"':
		return s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == '{' || c == '[':
		return value{kind: kindOther}, s.nested()
	}
	for _, lit := range []string{"true", "false", "null"} {
		if len(s.data)-s.pos >= len(lit) && string(s.data[s.pos:s.pos+len(lit)]) == lit {
			s.pos += len(lit)
			if lit == "null" {
				return value{kind: kindNull}, nil
			}
			return value{kind: kindOther}, nil
		}
	}
	return value{}, s.fail("want a value")
}

// str reads a string; its escapes are checked for shape here and decoded
// only if the field is used.
func (s *scanner) str() (value, error) {
	s.pos++ // the opening quote
	start, escaped := s.pos, false
	for s.pos < len(s.data) {
		switch c := s.data[s.pos]; {
		case c == '"':
			s.pos++
			return value{kind: kindString, raw: s.data[start : s.pos-1], escaped: escaped}, nil
		case c == '\\':
			escaped = true
			if s.pos+1 >= len(s.data) {
				return value{}, s.fail("unterminated string")
			}
			switch s.data[s.pos+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.pos += 2
			case 'u':
				if s.pos+6 > len(s.data) || !isHex4(s.data[s.pos+2:s.pos+6]) {
					return value{}, s.fail("bad \\u escape")
				}
				s.pos += 6
			default:
				return value{}, s.fail("bad escape")
			}
		case c < 0x20:
			return value{}, s.fail("control character in a string")
		default:
			s.pos++
		}
	}
	return value{}, s.fail("unterminated string")
}

func isHex4(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() (value, error) {
	start := s.pos
	digits := func() int {
		n := 0
		for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	s.eat('-')
	if s.eat('0') {
		if s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
			return value{}, s.fail("leading zero")
		}
	} else if digits() == 0 {
		return value{}, s.fail("want a digit")
	}
	if s.eat('.') && digits() == 0 {
		return value{}, s.fail("want a digit after '.'")
	}
	if s.eat('e') || s.eat('E') {
		if !s.eat('+') {
			s.eat('-')
		}
		if digits() == 0 {
			return value{}, s.fail("want an exponent")
		}
	}
	return value{kind: kindNumber, raw: s.data[start:s.pos]}, nil
}

// nested skips an object or an array, validating it; the wire format uses
// none for its own fields.
func (s *scanner) nested() error {
	open := s.data[s.pos]
	s.pos++
	s.space()
	closing := byte(']')
	if open == '{' {
		closing = '}'
	}
	if s.eat(closing) {
		return nil
	}
	for {
		s.space()
		if open == '{' {
			key, err := s.value()
			if err != nil {
				return err
			}
			if key.kind != kindString {
				return s.fail("want a member name")
			}
			s.space()
			if !s.eat(':') {
				return s.fail("want ':'")
			}
			s.space()
		}
		if _, err := s.value(); err != nil {
			return err
		}
		s.space()
		if s.eat(',') {
			continue
		}
		if s.eat(closing) {
			return nil
		}
		return s.fail("want ',' or a closing bracket")
	}
}
