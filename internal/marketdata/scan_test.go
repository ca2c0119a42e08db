package marketdata

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScanObjectFindsFieldsAndSkipsTheRest(t *testing.T) {
	out := make([]raw, 3)
	err := scanObject([]byte(` { "a" : "x\"y", "skip": {"n": [1, {"m": "}"}]}, "b":-1.5e3,"c":null, "a\u0062c": true,"a":"last"} `),
		[]string{"a", "b", "c"}, out)
	require.NoError(t, err)
	assert.Equal(t, `"last"`, string(out[0]), "a later duplicate wins")
	assert.Equal(t, `-1.5e3`, string(out[1]))
	assert.Equal(t, `null`, string(out[2]))
}

var scanCases = []string{
	`{}`, `{"a":1}`, `{"a":"b","c":[1,2,{"d":null}]}`, ` {"a" : true } `, `{"a":"\u00e9\n"}`,
	`{"a":-0.5E+10}`, `{"a":0}`, `{"a":{}}`, `{"a":[]}`,
	``, `{`, `}`, `[]`, `"a"`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`,
	`{"a":1e}`, `{"a":tru}`, `{"a":nul}`, `{"a":"x}`, "{\"a\":\"\x01\"}", `{"a":"\x"}`, `{"a":1} x`, `{"a":1}{}`,
	`{"a":[1,2}`, `{"a":{"b":]}}`, `{a:1}`, `{"a":1 "b":2}`, `{"a":"\ud800"}`, `{"a":[1,,2]}`,
}

// The scanner accepts exactly the JSON objects that encoding/json accepts.
func TestScanObjectAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range scanCases {
		checkAgainstEncodingJSON(t, []byte(c))
	}
}

func FuzzScanObject(f *testing.F) {
	for _, c := range scanCases {
		f.Add([]byte(c))
	}
	f.Fuzz(checkAgainstEncodingJSON)
}

func checkAgainstEncodingJSON(t *testing.T, data []byte) {
	out := make([]raw, 1)
	err := scanObject(data, []string{"a"}, out)
	var obj map[string]json.RawMessage
	want := json.Unmarshal(data, &obj)
	if want != nil {
		assert.Error(t, err, "%q is not a JSON object", data)
		return
	}
	require.NoError(t, err, "%q is a JSON object", data)
	if v, ok := obj["a"]; ok && bytes.IndexByte(data, '\\') < 0 {
		assert.Equal(t, string(v), string(out[0]), "%q", data)
	}
}
