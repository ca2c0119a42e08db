package dlq

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v2"

	"github.com/qicore/qiflow/internal/result"
	"github.com/qicore/qiflow/internal/testenv"
)

// run runs `qiflow dlq ARGS...` in process and returns its output and exit
// code.
func run(t *testing.T, broker *testenv.Broker, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := 0
	app := &cli.App{
		Name: "qiflow", Commands: []*cli.Command{CLICommand()}, Writer: &out, ErrWriter: &out,
		ExitErrHandler: func(_ *cli.Context, err error) {
			if coder, ok := err.(cli.ExitCoder); ok {
				code = coder.ExitCode()
				out.WriteString(err.Error())
			}
		},
	}
	err := app.Run(append([]string{"qiflow", "dlq"}, append(args, "--brokers", broker.SeedList())...))
	if err != nil && code == 0 {
		code = 1
		out.WriteString(err.Error())
	}
	return out.String(), code
}

// letter is a dead letter as the timescale output writes it.
func letter(key, value []byte, category, code, sourceTopic, partition, offset string) *kgo.Record {
	r := &kgo.Record{Key: key, Value: value}
	for _, h := range [][2]string{
		{result.HeaderErrorCategory, category}, {result.HeaderErrorCode, code}, {result.HeaderError, code + ": details"},
		{result.HeaderSourceTopic, sourceTopic}, {result.HeaderSourcePartition, partition}, {result.HeaderSourceOffset, offset},
	} {
		if h[1] != "" {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
		}
	}
	return r
}

// deadLetters fills crypto-prices.dlq with five letters: three
// invalid_value ones from partitions 3, 7 and 3 (one with bytes that are
// not UTF-8), one validation_failed and one without source headers.
func deadLetters(t *testing.T) *testenv.Broker {
	broker := testenv.NewBroker(t)
	broker.CreateTopic(t, "crypto-prices", 12)
	broker.CreateTopic(t, "crypto-prices.dlq", 1)
	broker.Produce(t, "crypto-prices.dlq",
		letter([]byte("binance:BTC"), []byte(`{"coinId":"bitcoin","symbol":"BTCBTCBTC"}`), "BUSINESS", "invalid_value", "crypto-prices", "3", "41"),
		letter([]byte("kraken:ETH"), []byte("{\"coinId\":\"eth\",\"junk\":\"\xff\xfe\x00\"}"), "BUSINESS", "invalid_value", "crypto-prices", "7", "9"),
		letter([]byte("binance:BTC"), []byte(`{"coinId":"bitcoin","symbol":"BTCBTCBTC","n":2}`), "BUSINESS", "invalid_value", "crypto-prices", "3", "42"),
		letter([]byte("okx:SOL"), []byte(`{"coinId":"solana","usdPrice":"-1"}`), "BUSINESS", "validation_failed", "crypto-prices", "1", "5"),
		letter(nil, []byte(`not json`), "BUSINESS", "invalid_json", "", "", ""),
	)
	return broker
}

func TestListFiltersByCodeCategoryAndTime(t *testing.T) {
	broker := deadLetters(t)
	out, code := run(t, broker, "list", "--topic", "crypto-prices.dlq", "--json", "--code", "invalid_value")
	require.Equal(t, 0, code, out)
	var letters []Letter
	require.NoError(t, json.Unmarshal([]byte(out), &letters), out)
	require.Len(t, letters, 3)
	assert.Equal(t, []int64{0, 1, 2}, []int64{letters[0].Offset, letters[1].Offset, letters[2].Offset})
	assert.Equal(t, "crypto-prices", letters[1].SourceTopic)
	assert.EqualValues(t, 7, letters[1].SourcePartition)
	assert.EqualValues(t, 9, letters[1].SourceOffset)
	assert.Equal(t, "invalid_value: details", letters[1].Error)

	out, code = run(t, broker, "list", "--topic", "crypto-prices.dlq", "--json", "--category", "security")
	require.Equal(t, 0, code, out)
	assert.JSONEq(t, `[]`, out)

	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	out, code = run(t, broker, "list", "--topic", "crypto-prices.dlq", "--json", "--since", future)
	require.Equal(t, 0, code, out)
	assert.JSONEq(t, `[]`, out)

	out, code = run(t, broker, "list", "--topic", "crypto-prices.dlq")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "crypto-prices.dlq/0/3")
	assert.Contains(t, out, "validation_failed")
	assert.Contains(t, out, "crypto-prices/1/5")

	out, code = run(t, broker, "list", "--topic", "nowhere.dlq")
	assert.Equal(t, 1, code)
	assert.Contains(t, out, "nowhere.dlq")
}

func TestShowPrintsEveryHeaderKeyAndValue(t *testing.T) {
	broker := deadLetters(t)
	out, code := run(t, broker, "show", "--topic", "crypto-prices.dlq", "--partition", "0", "--offset", "3")
	require.Equal(t, 0, code, out)
	for _, want := range []string{
		"crypto-prices.dlq/0/3", `key: "okx:SOL"`, "qiflow-error-category: BUSINESS", "qiflow-error-code: validation_failed",
		"qiflow-source-topic: crypto-prices", "qiflow-source-partition: 1", "qiflow-source-offset: 5", `value: {"coinId":"solana","usdPrice":"-1"}`,
	} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "bitcoin", "only the letter asked for")
}

func TestRedriveLandsEachLetterOnceInItsSourcePartitionByteForByte(t *testing.T) {
	broker := deadLetters(t)
	dlq := broker.ConsumeAll(t, "crypto-prices.dlq")

	out, code := run(t, broker, "replay", "--topic", "crypto-prices.dlq", "--code", "invalid_value", "--dry-run")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "would redrive 3 letters")
	assert.Empty(t, broker.ConsumeAll(t, "crypto-prices"), "a dry run sends nothing")

	out, code = run(t, broker, "replay", "--topic", "crypto-prices.dlq", "--code", "invalid_value")
	require.Equal(t, 0, code, out)
	assert.Contains(t, out, "redrove 3 letters")

	redriven := broker.ConsumeAll(t, "crypto-prices")
	require.Len(t, redriven, 3, "each selected letter once")
	byID := map[string]*kgo.Record{}
	for _, r := range redriven {
		require.Len(t, r.Headers, 1)
		assert.Equal(t, HeaderRedrive, r.Headers[0].Key)
		byID[string(r.Headers[0].Value)] = r
	}
	for _, i := range []int{0, 1, 2} {
		l := letterOf(dlq[i])
		r := byID[l.ID()]
		require.NotNil(t, r, "letter %s redriven", l.ID())
		assert.Equal(t, dlq[i].Key, r.Key, "key byte for byte")
		assert.Equal(t, dlq[i].Value, r.Value, "value byte for byte")
		assert.Equal(t, l.SourcePartition, r.Partition, "back to its source partition")
	}
	assert.Len(t, broker.ConsumeAll(t, "crypto-prices.dlq"), 5, "the dead-letter topic is left as it was")

	// A letter without a source cannot be redriven: it is named, and the
	// exit code says so.
	out, code = run(t, broker, "replay", "--topic", "crypto-prices.dlq", "--code", "invalid_json")
	assert.Equal(t, exitSkipped, code, out)
	assert.Contains(t, out, "skipped crypto-prices.dlq/0/4")
	assert.Len(t, broker.ConsumeAll(t, "crypto-prices"), 3)
}

func TestFilterMatch(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	l := Letter{Code: "invalid_value", Category: "BUSINESS", Timestamp: at, Partition: 2, Offset: 7}
	all := Filter{Partition: -1, Offset: -1}
	for name, c := range map[string]struct {
		f    Filter
		want bool
	}{
		"everything":      {all, true},
		"code":            {Filter{Codes: []string{"x", "invalid_value"}, Partition: -1, Offset: -1}, true},
		"other code":      {Filter{Codes: []string{"x"}, Partition: -1, Offset: -1}, false},
		"category, case":  {Filter{Categories: []string{"business"}, Partition: -1, Offset: -1}, true},
		"since, included": {Filter{Since: at, Partition: -1, Offset: -1}, true},
		"until, excluded": {Filter{Until: at, Partition: -1, Offset: -1}, false},
		"partition":       {Filter{Partition: 2, Offset: -1}, true},
		"other offset":    {Filter{Partition: -1, Offset: 8}, false},
	} {
		assert.Equal(t, c.want, c.f.Match(&l), name)
	}
}
