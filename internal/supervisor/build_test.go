package supervisor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestApplySetsEditsTheYAMLAndKeepsSecrets(t *testing.T) {
	const conf = `input:
  generate:
    mapping: 'root = "x"'
output:
  timescale:
    dsn: postgres://app:s3cret@db:5432/qiflow
    table: crypto_prices
`
	sets, err := parseOverrides([]string{"output.timescale.pool_size=8", "http.address=127.0.0.1:9", "logger.level=debug"})
	require.NoError(t, err)
	got, err := applyOverrides(conf, sets)
	require.NoError(t, err)
	assert.Contains(t, got, "dsn: postgres://app:s3cret@db:5432/qiflow", "the secret survives, unlike with StreamBuilder.SetFields")
	assert.Contains(t, got, "pool_size: 8")
	assert.Contains(t, got, "http:\n    address: 127.0.0.1:9")
	assert.Contains(t, got, "logger:\n    level: debug")

	unchanged, err := applyOverrides(conf, nil)
	require.NoError(t, err)
	assert.Equal(t, conf, unchanged)
}

func TestParseSetsRefusesAMissingValue(t *testing.T) {
	_, err := parseOverrides([]string{"output.timescale.pool_size"})
	assert.ErrorContains(t, err, "want path=value")
	_, err = parseOverrides([]string{"=3"})
	assert.ErrorContains(t, err, "want path=value")
}

func TestParseStreamRefusesWhatIsNotAPipeline(t *testing.T) {
	_, err := parseStream("tables:\n  - name: crypto_prices\n")
	assert.ErrorContains(t, err, "not a pipeline config")
	_, err = parseStream("input: [\n")
	assert.ErrorContains(t, err, "invalid YAML")
	top, err := parseStream("output:\n  drop: {}\n")
	require.NoError(t, err)
	assert.Contains(t, top, "output")
}

func TestStreamLabelLeavesAMappingOfTheConfigsOwn(t *testing.T) {
	none := streamLabel("prices", map[string]any{})
	require.Len(t, none, 2, "no metrics section: the default exporter, labelled")
	assert.Equal(t, "metrics.prometheus", none[0].path)
	assert.Equal(t, `meta stream = "prices"`, none[1].value)

	own := streamLabel("prices", map[string]any{"metrics": map[string]any{"prometheus": map[string]any{}}})
	assert.Equal(t, []override{{path: "metrics.mapping", value: `meta stream = "prices"`}}, own)

	mapped := streamLabel("prices", map[string]any{"metrics": map[string]any{"mapping": "root = this"}})
	assert.Empty(t, mapped)
}

func TestConfigFilesAndStreamNames(t *testing.T) {
	for name, want := range map[string]bool{
		"prices.yaml": true, "prices.yml": true, ".prices.yaml.swp": false, "prices.yaml~": false,
		"4913": false, ".#prices.yaml": false, "notes.txt": false,
	} {
		assert.Equal(t, want, isConfigFile(name), name)
	}
	assert.Equal(t, "prices", streamID("/pipelines/prices.yaml"))
	assert.Equal(t, "feed.v2", streamID("feed.v2.yml"))
}
