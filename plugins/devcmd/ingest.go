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

// The other files of the pipelines directory a dev run reads.
const (
	feedFile   = "feed.yaml"
	schemaFile = "schema.yaml"
	topicsFile = "topics.yaml"
)

// requiredFiles are the files the pipelines directory must hold.
func requiredFiles() []string {
	files := []string{feedFile, schemaFile, topicsFile}
	for _, p := range ingestPipelines {
		files = append(files, p.file)
	}
	return files
}

// groups are the ingest pipelines' consumer groups.
func groups() []string {
	names := make([]string, len(ingestPipelines))
	for i, p := range ingestPipelines {
		names[i] = p.group
	}
	return names
}
