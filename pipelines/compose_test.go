package pipelines_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/qicore/qiflow/internal/testenv"
)

// composeService is what the tests take from a docker-compose.yml service.
type composeService struct {
	Image       string            `yaml:"image"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Restart     string            `yaml:"restart"`
	Ports       []string          `yaml:"ports"`
	Volumes     []string          `yaml:"volumes"`
	Healthcheck struct {
		Test    []string `yaml:"test"`
		Disable bool     `yaml:"disable"`
	} `yaml:"healthcheck"`
}

// loadCompose reads ../docker-compose.yml, anchors and merge keys resolved.
func loadCompose(t *testing.T) map[string]composeService {
	t.Helper()
	raw, err := os.ReadFile("../docker-compose.yml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]composeService `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))
	return compose.Services
}

// longRunningQiflow lists compose's qiflow services that keep running
// (not the one-shot setup ones).
func longRunningQiflow(services map[string]composeService) []string {
	var names []string
	for name, svc := range services {
		if svc.Image == "qiflow:dev" && svc.Restart != "no" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// TestComposeServicesRunWithoutDocker runs every qiflow service of
// docker-compose.yml with its own command, flags, environment and files
// (./pipelines, mounted at /pipelines), against the test's broker and
// database instead of the Redpanda and TimescaleDB containers.
func TestComposeServicesRunWithoutDocker(t *testing.T) {
	compose := struct{ Services map[string]composeService }{loadCompose(t)}
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

// pinnedTag is an image reference whose tag names a version: digits, not
// latest or a bare major.
var pinnedTag = regexp.MustCompile(`:v?[0-9]+\.[0-9]+(\.[0-9]+)?(-[a-z0-9.]+)?$`)

// TestComposeFileIsSafeToRunNextToLocalServices checks, offline, what the
// issue found wrong with docker-compose.yml: unpinned images, a health check
// that the image's temporary init server passes, published ports that clash
// or listen beyond loopback, and qiflow HTTP servers nobody can reach.
func TestComposeFileIsSafeToRunNextToLocalServices(t *testing.T) {
	services := loadCompose(t)
	hostPorts := map[string]string{}
	for name, svc := range services {
		if svc.Image != "qiflow:dev" {
			assert.Regexp(t, pinnedTag, svc.Image, "%s: the image is pinned to a version", name)
		}
		for _, p := range svc.Ports {
			parts := strings.Split(p, ":")
			require.Len(t, parts, 3, "%s: port %q is host-address:host-port:container-port", name, p)
			assert.Equal(t, "127.0.0.1", parts[0], "%s: port %q listens on loopback only", name, p)
			if other, taken := hostPorts[parts[1]]; taken {
				t.Errorf("%s and %s both publish host port %s", other, name, parts[1])
			}
			hostPorts[parts[1]] = name
			assert.NotContains(t, []string{"5432", "9092", "4195", "3000", "9090"}, parts[1],
				"%s: host port %s is not the default port of a service already running on this machine", name, parts[1])
		}
	}

	db := services["timescaledb"]
	assert.Equal(t, []string{"127.0.0.1:15432:5432"}, db.Ports, "the README's database address")
	require.NotEmpty(t, db.Healthcheck.Test)
	assert.Equal(t, "pg_isready", db.Healthcheck.Test[1])
	assert.Contains(t, strings.Join(db.Healthcheck.Test, " "), " -h 127.0.0.1 ",
		"pg_isready goes over TCP: the image's temporary init server listens on its Unix socket only")
	assert.Contains(t, services["redpanda"].Ports, "127.0.0.1:19092:19092")

	for _, name := range longRunningQiflow(services) {
		svc := services[name]
		assert.Equal(t, "0.0.0.0:4195", svc.Environment["QIFLOW_HTTP_ADDRESS"], "%s: its HTTP server listens beyond the container's loopback", name)
		var published bool
		for _, p := range svc.Ports {
			published = published || strings.HasSuffix(p, ":4195")
		}
		assert.True(t, published, "%s publishes its HTTP port (/ready, /metrics, /reload): %v", name, svc.Ports)
		assert.Contains(t, svc.Command, "--watch", "%s runs with --watch", name)
	}
	for _, name := range []string{"schema", "topics"} {
		assert.Equal(t, "development", services[name].Environment["QIFLOW_ENV"],
			"%s: the compose broker and database have no TLS or SASL, so the setup commands run the development profile, not the image's production one", name)
	}
}

// TestComposePrometheusScrapesEveryQiflowService checks that Prometheus's
// targets are exactly the long-running qiflow services' HTTP ports, and
// that Grafana gets the datasource and the dashboard at the paths its
// provisioning names.
func TestComposePrometheusScrapesEveryQiflowService(t *testing.T) {
	services := loadCompose(t)
	prom := services["prometheus"]
	require.Contains(t, prom.Volumes, "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro")
	raw, err := os.ReadFile("../deploy/prometheus/prometheus.yml")
	require.NoError(t, err)
	var promConf struct {
		ScrapeConfigs []struct {
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &promConf))
	var targets []string
	for _, sc := range promConf.ScrapeConfigs {
		assert.Equal(t, "/metrics", sc.MetricsPath)
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
	}
	var want []string
	for _, name := range longRunningQiflow(services) {
		want = append(want, name+":4195")
	}
	assert.ElementsMatch(t, want, targets, "Prometheus scrapes every long-running qiflow service, and nothing else")

	grafana := services["grafana"]
	mounts := map[string]string{}
	for _, v := range grafana.Volumes {
		parts := strings.Split(v, ":")
		mounts[parts[1]] = parts[0]
	}
	require.Equal(t, "./deploy/grafana/provisioning", mounts["/etc/grafana/provisioning"])
	var dashProv struct {
		Providers []struct {
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	raw, err = os.ReadFile("../deploy/grafana/provisioning/dashboards/qiflow.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &dashProv))
	require.Len(t, dashProv.Providers, 1)
	dir := dashProv.Providers[0].Options.Path
	require.Equal(t, "./deploy/grafana/dashboards", mounts[dir], "the provisioned dashboard directory is mounted from the repository")
	assert.FileExists(t, filepath.Join("..", mounts[dir], "qiflow.json"))
	assert.Equal(t, dir+"/qiflow.json", grafana.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])

	var dsProv struct {
		Datasources []struct {
			Type string `yaml:"type"`
			URL  string `yaml:"url"`
		} `yaml:"datasources"`
	}
	raw, err = os.ReadFile("../deploy/grafana/provisioning/datasources/prometheus.yml")
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, &dsProv))
	require.Len(t, dsProv.Datasources, 1)
	assert.Equal(t, "prometheus", dsProv.Datasources[0].Type)
	assert.Equal(t, "http://prometheus:9090", dsProv.Datasources[0].URL, "Grafana reaches compose's Prometheus service")
}
