package bench

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/bufbuild/protocompile"
	"github.com/twmb/avro"
	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/qicore/qiflow/internal/datum"
	"github.com/qicore/qiflow/internal/marketdata"
	"github.com/qicore/qiflow/internal/registry"
)

// formatRows is how many distinct prices one measurement decodes.
const formatRows = 200_000

// rowDecoder is the timescale output's decode step for one encoding.
type rowDecoder func(msg []byte, row []datum.Datum) error

// BenchmarkFormatsDecode measures the CPU the timescale output spends
// decoding one price into a row, per encoding: qiflow's JSON wire format,
// and Confluent-framed Avro, Protobuf and JSON Schema (validated against
// its writer schema, then read as the JSON wire format) through the
// registry decoder
// (schemas from franz-go's srfake registry, cached before the clock
// starts). CPU is this process's user and kernel time from /proc, per
// 1,000 rows; ns/row and allocs/row are the Go figures of the same loop.
// The decoders validate by the same rules (internal/marketdata), so the
// difference is the format's own cost.
func BenchmarkFormatsDecode(b *testing.B) {
	reg := srfake.New()
	b.Cleanup(reg.Close)
	msgs := map[string][][]byte{}
	decoders := map[string]rowDecoder{"json": marketdata.Price.DecodeInto}
	for i := range formatRows {
		msgs["json"] = append(msgs["json"], benchPriceJSON(i))
	}
	for _, enc := range []struct {
		name, file string
		typ        sr.SchemaType
		encode     func(schema string, id, i int) []byte
	}{
		{registry.EncodingAvro, "price.avsc", sr.TypeAvro, benchPriceAvro(b)},
		{registry.EncodingProtobuf, "price.proto", sr.TypeProtobuf, benchPriceProto(b)},
		{registry.EncodingJSONSchema, "price.schema.json", sr.TypeJSON, benchPriceJSONSchema},
	} {
		text, err := os.ReadFile("../pipelines/schemas/" + enc.file)
		if err != nil {
			b.Fatal(err)
		}
		id, _, err := reg.RegisterSchema("crypto-prices-"+enc.name+"-value", sr.Schema{Schema: string(text), Type: enc.typ})
		if err != nil {
			b.Fatal(err)
		}
		for i := range formatRows {
			msgs[enc.name] = append(msgs[enc.name], enc.encode(string(text), id, i))
		}
		dec, err := registry.NewDecoder(registry.Config{URL: reg.URL()}, enc.name, marketdata.Price)
		if err != nil {
			b.Fatal(err)
		}
		if err := dec.Load(context.Background(), msgs[enc.name][:1], func(context.Context, int, error) error { return fmt.Errorf("registry down") }); err != nil {
			b.Fatal(err)
		}
		decoders[enc.name] = dec.DecodeInto
	}

	for _, name := range []string{"json", registry.EncodingAvro, registry.EncodingProtobuf, registry.EncodingJSONSchema} {
		b.Run(name, func(b *testing.B) {
			row := make([]datum.Datum, len(marketdata.Price.Columns))
			var cpu time.Duration
			var bytesIn int
			for b.Loop() {
				before, err := processCPU(os.Getpid())
				if err != nil {
					b.Fatal(err)
				}
				for _, m := range msgs[name] {
					if err := decoders[name](m, row); err != nil {
						b.Fatal(err)
					}
					bytesIn += len(m)
				}
				after, err := processCPU(os.Getpid())
				if err != nil {
					b.Fatal(err)
				}
				cpu += after - before
			}
			rows := float64(b.N) * formatRows
			b.ReportMetric(float64(cpu.Microseconds())/1000/(rows/1000), "client-ms/krow")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rows, "ns/row")
			b.ReportMetric(float64(bytesIn)/rows, "bytes/row")
		})
	}
}

// benchPriceJSON is the i-th price as the JSON wire format.
func benchPriceJSON(i int) []byte {
	return fmt.Appendf(nil, `{"coinId":"coin-%d","symbol":"C%d","exchangeId":"binance","usdPrice":"%d.12345678","marketCap":"1320000000000.50","volume24h":"28000000000.25","change24h":"-1.2345","change7d":"3.5","lastUpdated":%d,"source":"coingecko","attribution":"CoinGecko"}`,
		i%50, i%50, 1+i%1000, 1764158400000+int64(i)*10)
}

// benchPriceJSONSchema frames the i-th JSON price as Confluent's JSON
// Schema serializer does.
func benchPriceJSONSchema(_ string, id, i int) []byte {
	return append(registry.AppendFrame(nil, id), benchPriceJSON(i)...)
}

// benchPriceAvro encodes the i-th price with price.avsc, framed.
func benchPriceAvro(b *testing.B) func(schema string, id, i int) []byte {
	var s *avro.Schema
	return func(schema string, id, i int) []byte {
		if s == nil {
			s = avro.MustParse(schema)
		}
		payload, err := s.Encode(map[string]any{"coinId": fmt.Sprintf("coin-%d", i%50), "symbol": fmt.Sprintf("C%d", i%50), "exchangeId": "binance",
			"usdPrice": fmt.Sprintf("%d.12345678", 1+i%1000), "lastUpdated": time.UnixMilli(1764158400000 + int64(i)*10),
			"source": "coingecko", "attribution": "CoinGecko",
			"marketCap": "1320000000000.50", "volume24h": "28000000000.25", "change24h": "-1.2345", "change7d": "3.5"})
		if err != nil {
			b.Fatal(err)
		}
		return append(registry.AppendFrame(nil, id), payload...)
	}
}

// benchPriceProto encodes the i-th price with price.proto, framed with
// message index [0].
func benchPriceProto(b *testing.B) func(schema string, id, i int) []byte {
	var md protoreflect.MessageDescriptor
	return func(schema string, id, i int) []byte {
		if md == nil {
			compiler := protocompile.Compiler{Resolver: protocompile.WithStandardImports(&protocompile.SourceResolver{
				Accessor: protocompile.SourceAccessorFromMap(map[string]string{"price.proto": schema}),
			})}
			files, err := compiler.Compile(context.Background(), "price.proto")
			if err != nil {
				b.Fatal(err)
			}
			md = files[0].Messages().Get(0)
		}
		m := dynamicpb.NewMessage(md)
		set := func(name string, v protoreflect.Value) { m.Set(md.Fields().ByName(protoreflect.Name(name)), v) }
		for name, v := range map[string]string{"coin_id": fmt.Sprintf("coin-%d", i%50), "symbol": fmt.Sprintf("C%d", i%50),
			"exchange_id": "binance", "usd_price": fmt.Sprintf("%d.12345678", 1+i%1000), "source": "coingecko", "attribution": "CoinGecko",
			"market_cap": "1320000000000.50", "volume_24h": "28000000000.25", "change_24h": "-1.2345", "change_7d": "3.5"} {
			set(name, protoreflect.ValueOfString(v))
		}
		tsField := md.Fields().ByName("last_updated")
		ts := dynamicpb.NewMessage(tsField.Message())
		at := time.UnixMilli(1764158400000 + int64(i)*10)
		ts.Set(tsField.Message().Fields().ByName("seconds"), protoreflect.ValueOfInt64(at.Unix()))
		ts.Set(tsField.Message().Fields().ByName("nanos"), protoreflect.ValueOfInt32(int32(at.Nanosecond())))
		m.Set(tsField, protoreflect.ValueOfMessage(ts))
		payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
		if err != nil {
			b.Fatal(err)
		}
		return append(registry.AppendIndexes(registry.AppendFrame(nil, id), 0), payload...)
	}
}
