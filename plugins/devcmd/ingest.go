package devcmd

// ingestPipeline is one of the shipped ingest pipelines and the contract's
// names around it (DESIGN.md).
type ingestPipeline struct {
	name  string // the summary's name, and the pipeline label of its metrics
	file  string // in the pipelines directory
	topic string
	table string
	group string
}

// ingestPipelines are the shipped ingest pipelines, in the summary's order.
var ingestPipelines = []ingestPipeline{
	{"prices", "prices.yaml", "crypto-prices", "crypto_prices", "qiflow-prices"},
	{"ohlcv", "ohlcv.yaml", "crypto-ohlcv", "crypto_ohlcv", "qiflow-ohlcv"},
	{"analytics", "analytics.yaml", "crypto-analytics", "crypto_market_analytics", "qiflow-analytics"},
}

// avroIngestPipelines are those of --format avro: prices come as
// Confluent-framed Avro (examples/prices_avro.yaml), with a registry the run
// serves; candles and analytics stay JSON, as only prices have an Avro
// example pipeline.
var avroIngestPipelines = []ingestPipeline{
	{"prices", "examples/prices_avro.yaml", "crypto-prices-avro", "crypto_prices", "qiflow-prices-avro"},
	ingestPipelines[1],
	ingestPipelines[2],
}

// Formats of --format.
const (
	formatJSON = "json"
	formatAvro = "avro"
)

// ingestFor returns the ingest pipelines of a --format.
func ingestFor(format string) []ingestPipeline {
	if format == formatAvro {
		return avroIngestPipelines
	}
	return ingestPipelines
}

// The other files of the pipelines directory a dev run reads.
const (
	feedFile   = "feed.yaml"
	schemaFile = "schema.yaml"
	topicsFile = "topics.yaml"
)

// requiredFiles are the files the pipelines directory must hold.
func requiredFiles(ingest []ingestPipeline) []string {
	files := []string{feedFile, schemaFile, topicsFile}
	for _, p := range ingest {
		files = append(files, p.file)
	}
	return files
}

// groups are the ingest pipelines' consumer groups.
func groups(ingest []ingestPipeline) []string {
	names := make([]string, len(ingest))
	for i, p := range ingest {
		names[i] = p.group
	}
	return names
}
