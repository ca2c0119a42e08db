package pipelines_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/testenv"
)

// composeService is what the test takes from a docker-compose.yml service.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Restart     string            `yaml:"restart"`
}

// TestComposeServicesRunWithoutDocker runs every qiflow service of
// docker-compose.yml with its own command, flags, environment and files
// (./pipelines, mounted at /pipelines), against the test's broker and
// database instead of the Redpanda and TimescaleDB containers.
func TestComposeServicesRunWithoutDocker(t *testing.T) {
	raw, err := os.ReadFile("../docker-compose.yml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))
	pipelinesDir, err := filepath.Abs(".")
	require.NoError(t, err)

	broker := testenv.NewBroker(t)
	dsn := testenv.Database(t)
	bin := testenv.BuildBinary(t, "./cmd/qiflow")
	command := func(name string) ([]string, []string) {
		svc := compose.Services[name]
		require.Equal(t, "qiflow:dev", svc.Image, "%s runs qiflow", name)
		args := make([]string, len(svc.Command))
		for i, a := range svc.Command {
			args[i] = strings.ReplaceAll(a, "/pipelines/", pipelinesDir+"/")
		}
		var env []string
		for k, v := range svc.Environment {
			switch k {
			case "REDPANDA_BROKERS":
				v = broker.SeedList()
			case "DATABASE_URL":
				v = dsn
			}
			env = append(env, k+"="+v)
		}
		return args, env
	}

	var oneShot, longRunning []string
	for name, svc := range compose.Services {
		switch {
		case svc.Image != "qiflow:dev":
		case svc.Restart == "no":
			oneShot = append(oneShot, name)
		default:
			longRunning = append(longRunning, name)
		}
	}
	assert.ElementsMatch(t, []string{"schema", "topics"}, oneShot)
	assert.ElementsMatch(t, []string{"feed", "ingest-prices", "ingest-ohlcv", "ingest-analytics"}, longRunning)

	for _, name := range oneShot {
		args, env := command(name)
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: qiflow %s\n%s", name, strings.Join(args, " "), out)
	}

	procs := map[string]qiflowProcess{}
	for _, name := range longRunning {
		args, env := command(name)
		addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
		env = append(env, "QIFLOW_HTTP_ADDRESS="+addr)
		procs[name] = qiflowProcess{testenv.StartProcess(t, bin, env, args...), addr}
	}
	for _, table := range []string{"crypto_prices", "crypto_ohlcv", "crypto_market_analytics"} {
		require.Eventually(t, func() bool { return rowCount(t, dsn, table) > 0 }, 60*time.Second, 100*time.Millisecond,
			"no rows in %s; ingest-prices:\n%s", table, procs["ingest-prices"].Output())
	}
	// The image's health check: GET /ready answers 200.
	for name, p := range procs {
		resp, err := http.Get("http://" + p.http + "/ready")
		require.NoError(t, err, name)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s is ready:\n%s", name, p.Output())
	}
	// The ingest services run with --watch: a reload answers for itself.
	resp, err := http.Post("http://"+procs["ingest-prices"].http+"/reload", "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	assert.Contains(t, string(body), `"result": "unchanged"`)
	for name, p := range procs {
		require.NoError(t, p.Signal(syscall.SIGTERM))
		code, err := p.Wait(30 * time.Second)
		require.NoError(t, err, name)
		assert.Equal(t, 0, code, "%s stops cleanly:\n%s", name, p.Output())
	}
}
