package timescale_output

import (
	"fmt"
	"testing"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/qicore/qiflow/internal/marketdata"
)

// pricesTable is crypto_prices as the catalog describes it.
func pricesTable() *table {
	t := &table{columns: map[string]column{}, primaryKey: []string{"last_updated", "coin_id", "exchange_id"}}
	for _, c := range []column{
		{name: "last_updated", typeOID: oidTimestamptz, typeName: "timestamp with time zone", typmod: -1, notNull: true},
		{name: "coin_id", typeOID: oidVarchar, typeName: "character varying(64)", typmod: 68, notNull: true},
		{name: "symbol", typeOID: oidVarchar, typeName: "character varying(32)", typmod: 36, notNull: true},
		{name: "exchange_id", typeOID: oidVarchar, typeName: "character varying(64)", typmod: 68, notNull: true},
		{name: "usd_price", typeOID: oidNumeric, typeName: "numeric(20,8)", typmod: 20<<16 | 8 + 4, notNull: true},
		{name: "market_cap", typeOID: oidNumeric, typeName: "numeric(24,2)", typmod: 24<<16 | 2 + 4},
		{name: "volume_24h", typeOID: oidNumeric, typeName: "numeric(24,2)", typmod: 24<<16 | 2 + 4},
		{name: "change_24h", typeOID: oidNumeric, typeName: "numeric(10,4)", typmod: 10<<16 | 4 + 4},
		{name: "change_7d", typeOID: oidNumeric, typeName: "numeric(10,4)", typmod: 10<<16 | 4 + 4},
		{name: "source", typeOID: oidVarchar, typeName: "character varying(64)", typmod: 68, notNull: true},
		{name: "attribution", typeOID: oidText, typeName: "text", typmod: -1, notNull: true},
	} {
		t.columns[c.name] = c
		t.order = append(t.order, c.name)
	}
	return t
}

// BenchmarkEncodePrices measures the output's CPU per row without a
// database: decoding 2,000 price messages, encoding them as binary COPY
// tuples and resolving their keys, as WriteBatch does before it writes.
func BenchmarkEncodePrices(b *testing.B) {
	t := pricesTable()
	cols, err := t.pick(marketdata.Price.Columns)
	if err != nil {
		b.Fatal(err)
	}
	var key []keyPart
	for _, k := range t.primaryKey {
		for i, c := range cols {
			if c.name == k {
				key = append(key, keyPart{idx: i, col: c})
			}
		}
	}
	o := &output{conf: outputConfig{kind: marketdata.Price}, columns: cols, key: key}
	batch := make(service.MessageBatch, 2000)
	for i := range batch {
		batch[i] = service.NewMessage(fmt.Appendf(nil, `{"coinId":"coin-%02d","symbol":"C%02d","exchangeId":"exchange-%d","usdPrice":"%d.%08d","marketCap":"%d.%02d","volume24h":"%d.%02d","change24h":"%d.%04d","change7d":"-%d.%04d","lastUpdated":%d,"source":"bench","attribution":"qiflow benchmark"}`,
			i%50, i%50, (i/50)%8, 100+i%9000, i%100000000, 1_000_000_000+i, i%100, 5_000_000+i, i%100, i%20, i%10000, i%30, i%10000, 1764158400000+int64(i/400)*1000))
	}
	b.ReportAllocs()
	for b.Loop() {
		failed := map[int]error{}
		enc := o.encode(batch, failed)
		rows, _ := dedupe(enc, enc.finish(), key, conflictDoNothing, failed)
		if len(rows) != len(batch) || len(failed) > 0 {
			b.Fatalf("%d rows, %d failed", len(rows), len(failed))
		}
		enc.release()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/row")
}
