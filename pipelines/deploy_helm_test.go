package pipelines_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// chartDir is the Helm chart of deploy/helm.
const chartDir = "../deploy/helm/qiflow"

// The Helm the tests run, built from the Go module proxy: no cluster and no
// system helm is needed.
const (
	helmModule  = "helm.sh/helm/v4"
	helmVersion = "v4.3.2"
)

var helmBuild struct {
	once sync.Once
	path string
	// unreachable is why the Helm module could not be fetched; the tests
	// skip then, and fail on any other build error.
	unreachable string
	err         error
}

// helmBinary builds Helm once per test binary (go install into a GOBIN in
// the temporary directory, outside this module, so go.mod is untouched)
// and returns its path. It skips the test when the module proxy cannot be
// reached, and fails it when Helm does not build.
func helmBinary(t *testing.T) string {
	t.Helper()
	helmBuild.once.Do(func() {
		// One directory per version, reused by later test binaries, so the
		// 100 MB binary is not left behind once per run.
		dir := filepath.Join(os.TempDir(), "qiflow-test-helm-"+helmVersion)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			helmBuild.err = err
			return
		}
		env := append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOWORK=off")
		// Fetching the module first tells an absent proxy from a broken build.
		download := exec.Command("go", "mod", "download", helmModule+"@"+helmVersion)
		download.Dir, download.Env = dir, env
		if out, err := download.CombinedOutput(); err != nil {
			helmBuild.unreachable = fmt.Sprintf("%s: %v\n%s", strings.Join(download.Args, " "), err, out)
			return
		}
		install := exec.Command("go", "install", helmModule+"/cmd/helm@"+helmVersion)
		install.Dir, install.Env = dir, env
		if out, err := install.CombinedOutput(); err != nil {
			if isFetchFailure(string(out)) {
				helmBuild.unreachable = fmt.Sprintf("%s: %v\n%s", strings.Join(install.Args, " "), err, out)
				return
			}
			helmBuild.err = fmt.Errorf("%s: %w\n%s", strings.Join(install.Args, " "), err, out)
			return
		}
		helmBuild.path = filepath.Join(dir, "helm")
	})
	if helmBuild.unreachable != "" {
		t.Skipf("Helm cannot be built here because its module cannot be fetched (no module proxy?): %s", helmBuild.unreachable)
	}
	require.NoError(t, helmBuild.err)
	return helmBuild.path
}

// isFetchFailure reports whether go's output is about downloading modules
// (the network or GOPROXY), not about compiling them.
func isFetchFailure(out string) bool {
	for _, s := range []string{"dial tcp", "no such host", "i/o timeout", "connection refused", "GOPROXY", "proxyconnect", "module lookup disabled", "TLS handshake timeout"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// helm runs the Helm binary and returns its standard output; standard
// error goes into the error.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// object is one rendered Kubernetes object.
type object map[string]any

func (o object) kind() string { return str(o, "kind") }
func (o object) name() string { return str(o, "metadata", "name") }

// asMap returns a decoded YAML mapping: yaml.v3 decodes the mappings inside
// an object as objects too.
func asMap(v any) map[string]any {
	switch m := v.(type) {
	case object:
		return m
	case map[string]any:
		return m
	}
	return nil
}

// get walks o by map keys and list indexes.
func get(v any, path ...any) any {
	for _, p := range path {
		switch key := p.(type) {
		case string:
			m := asMap(v)
			if m == nil {
				return nil
			}
			v = m[key]
		case int:
			l, ok := v.([]any)
			if !ok || key >= len(l) {
				return nil
			}
			v = l[key]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...any) []any {
	l, _ := get(v, path...).([]any)
	return l
}

// render runs helm template on the chart and returns its objects.
func render(t *testing.T, args ...string) []object {
	t.Helper()
	out, err := helm(t, append([]string{"template", "rel", chartDir}, args...)...)
	require.NoError(t, err)
	dec := yaml.NewDecoder(strings.NewReader(out))
	var objects []object
	for {
		var o object
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "helm template prints YAML:\n%s", out)
		if o != nil {
			objects = append(objects, o)
		}
	}
	return objects
}

func byKind(objects []object, kind string) map[string]object {
	out := map[string]object{}
	for _, o := range objects {
		if o.kind() == kind {
			out[o.name()] = o
		}
	}
	return out
}

// container returns the first container of a Deployment or Job.
func container(o object) any { return get(o, "spec", "template", "spec", "containers", 0) }

func envOf(c any) map[string]any {
	env := map[string]any{}
	for _, e := range list(c, "env") {
		env[str(e, "name")] = e
	}
	return env
}

func stringsOf(l []any) []string {
	var out []string
	for _, v := range l {
		out = append(out, fmt.Sprint(v))
	}
	return out
}

// matches reports whether labels has every key and value of selector.
func matches(selector, labels any) bool {
	sel, lab := asMap(selector), asMap(labels)
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if lab[k] != v {
			return false
		}
	}
	return true
}

func TestHelmChartLints(t *testing.T) {
	for _, args := range [][]string{nil, {"--set", "serviceMonitor.enabled=true"}, {"--set", "database.urlSecretKey=uri"}} {
		out, err := helm(t, append([]string{"lint", "--strict", chartDir}, args...)...)
		require.NoError(t, err)
		assert.Contains(t, out, "1 chart(s) linted, 0 chart(s) failed")
	}
}

// ingestPipelines returns the file names of pipelines/ that read Redpanda:
// the pipelines the chart runs (feed.yaml, a synthetic source, is not one).
func ingestPipelines(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	require.NoError(t, err)
	var ingest []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		var config map[string]any
		require.NoError(t, yaml.Unmarshal(data, &config), f)
		if get(config, "input", "redpanda") != nil {
			ingest = append(ingest, f)
		}
	}
	require.NotEmpty(t, ingest)
	return ingest
}

// TestHelmChartShipsTheRepositoryPipelines keeps the chart's files/ equal,
// byte for byte, to the ingest pipelines, schema.yaml and topics.yaml of
// pipelines/: a pipeline edited or added there fails here until it is
// copied (values.yaml and docs/helm.md say how).
func TestHelmChartShipsTheRepositoryPipelines(t *testing.T) {
	copies, err := filepath.Glob(filepath.Join(chartDir, "files", "*"))
	require.NoError(t, err)
	var names []string
	for _, c := range copies {
		name := filepath.Base(c)
		names = append(names, name)
		chart, err := os.ReadFile(c)
		require.NoError(t, err)
		repo, err := os.ReadFile(name)
		require.NoError(t, err, "%s has a source in pipelines/", c)
		assert.True(t, bytes.Equal(repo, chart), "%s equals pipelines/%s: cp pipelines/%s deploy/helm/qiflow/files/", c, name, name)
	}
	assert.ElementsMatch(t, append(ingestPipelines(t), "schema.yaml", "topics.yaml"), names)
}

// TestHelmChartRendersReplicasProbesSecretsAndTheSchemaJob renders the
// chart and checks each object item 17 of issue 16 asks for.
func TestHelmChartRendersReplicasProbesSecretsAndTheSchemaJob(t *testing.T) {
	objects := render(t, "--set", "serviceMonitor.enabled=true", "--set", "ingest.prices.replicas=5",
		"--set", "secrets.existingSecret=qiflow-credentials")
	deployments := byKind(objects, "Deployment")
	services := byKind(objects, "Service")
	pdbs := byKind(objects, "PodDisruptionBudget")
	configMaps := byKind(objects, "ConfigMap")
	jobs := byKind(objects, "Job")
	assert.Empty(t, byKind(objects, "Secret"), "the chart renders no Secret: passwords stay out of values and releases")

	pipelines := configMaps["rel-qiflow-pipelines"]
	require.NotNil(t, pipelines, "the pipelines ConfigMap")
	wantReplicas := map[string]int{"rel-qiflow-prices": 5, "rel-qiflow-ohlcv": 2, "rel-qiflow-analytics": 1}
	require.Len(t, deployments, len(wantReplicas))
	groups := map[string]string{}
	var run []string
	for name, want := range wantReplicas {
		d := deployments[name]
		require.NotNil(t, d, name)
		assert.Equal(t, want, get(d, "spec", "replicas"), "%s replicas", name)
		c := container(d)
		args := stringsOf(list(c, "args"))
		require.NotEmpty(t, args)
		assert.Equal(t, []string{"run", "--watch"}, args[:2], "%s runs its pipeline with --watch", name)
		file := args[len(args)-1]
		require.True(t, strings.HasPrefix(file, "/pipelines/"), "%s: %v", name, args)
		run = append(run, strings.TrimPrefix(file, "/pipelines/"))

		// The pipeline comes from the ConfigMap, mounted at /pipelines.
		var mounted bool
		for _, m := range list(c, "volumeMounts") {
			if str(m, "mountPath") == "/pipelines" {
				for _, v := range list(d, "spec", "template", "spec", "volumes") {
					mounted = mounted || (str(v, "name") == str(m, "name") && str(v, "configMap", "name") == pipelines.name())
				}
			}
		}
		assert.True(t, mounted, "%s mounts the pipelines ConfigMap at /pipelines", name)
		content := str(pipelines, "data", strings.TrimPrefix(file, "/pipelines/"))
		require.NotEmpty(t, content, "%s: the ConfigMap holds %s", name, file)
		shipped, err := os.ReadFile(strings.TrimPrefix(file, "/pipelines/"))
		require.NoError(t, err)
		assert.Equal(t, string(shipped), content, "%s runs the shipped %s", name, file)
		var pipeline map[string]any
		require.NoError(t, yaml.Unmarshal([]byte(content), &pipeline))
		group := str(pipeline, "input", "redpanda", "consumer_group")
		require.NotEmpty(t, group, "%s: %s names its consumer group: every replica joins it", name, file)
		assert.NotContains(t, group, "${", "%s: the group does not vary per pod", name)

		// One Deployment per pipeline, so its replicas are the only members
		// of the group and share its partitions.
		if other, ok := groups[group]; ok {
			t.Errorf("%s and %s both join the consumer group %s", other, name, group)
		}
		groups[group] = name

		// Probes on the HTTP port, which listens beyond the pod's loopback.
		var port any
		for _, p := range list(c, "ports") {
			if str(p, "name") == "http" {
				port = get(p, "containerPort")
			}
		}
		assert.Equal(t, 4195, port, "%s: the http port", name)
		assert.Equal(t, "0.0.0.0:4195", str(envOf(c)["QIFLOW_HTTP_ADDRESS"], "value"))
		assert.Equal(t, "/ready", str(c, "readinessProbe", "httpGet", "path"), name)
		assert.Equal(t, "http", str(c, "readinessProbe", "httpGet", "port"), name)
		assert.Equal(t, "/ping", str(c, "livenessProbe", "httpGet", "path"), name)
		assert.Equal(t, "http", str(c, "livenessProbe", "httpGet", "port"), name)
		assert.Equal(t, "production", str(envOf(c)["QIFLOW_ENV"], "value"), "%s runs the production profile", name)
		assertSecretsFromSecret(t, name, d, "qiflow-credentials")
		assertPasswordFile(t, name, d, "QIFLOW_REDPANDA_SASL_PASSWORD_FILE", "qiflow-credentials", "redpanda-password")
		assertPasswordFile(t, name, d, "QIFLOW_DATABASE_PASSWORD_FILE", "qiflow-credentials", "database-password")
		assert.Equal(t, "postgres://qiflow@timescaledb:5432/qiflow?sslmode=verify-full", str(envOf(c)["DATABASE_URL"], "value"))
		assert.False(t, get(d, "spec", "template", "spec", "automountServiceAccountToken").(bool), "%s needs no Kubernetes API token", name)

		podLabels := get(d, "spec", "template", "metadata", "labels")
		assert.True(t, matches(get(d, "spec", "selector", "matchLabels"), podLabels), "%s selects its pods", name)
		pdb := pdbs[name]
		require.NotNil(t, pdb, "%s has a PodDisruptionBudget", name)
		assert.Equal(t, 1, get(pdb, "spec", "maxUnavailable"))
		assert.True(t, matches(get(pdb, "spec", "selector", "matchLabels"), podLabels), "the PodDisruptionBudget of %s selects its pods", name)
		svc := services[name]
		require.NotNil(t, svc, "%s has a Service", name)
		assert.True(t, matches(get(svc, "spec", "selector"), podLabels), "the Service of %s selects its pods", name)
	}
	assert.Len(t, groups, 3)
	assert.ElementsMatch(t, ingestPipelines(t), run, "every shipped ingest pipeline runs")

	// The ServiceMonitor scrapes /metrics of every ingest Service.
	monitors := byKind(objects, "ServiceMonitor")
	require.Len(t, monitors, 1)
	for _, m := range monitors {
		assert.Equal(t, "monitoring.coreos.com/v1", str(m, "apiVersion"))
		assert.Equal(t, "http", str(m, "spec", "endpoints", 0, "port"))
		assert.Equal(t, "/metrics", str(m, "spec", "endpoints", 0, "path"))
		for name, svc := range services {
			assert.True(t, matches(get(m, "spec", "selector", "matchLabels"), get(svc, "metadata", "labels")), "the ServiceMonitor selects %s", name)
		}
	}

	// The schema Job: qiflow schema apply, as a hook before install and
	// upgrade, from a hook ConfigMap made before it.
	schemaJob := jobs["rel-qiflow-schema"]
	require.NotNil(t, schemaJob, "the schema Job")
	hooks := strings.Split(str(schemaJob, "metadata", "annotations", "helm.sh/hook"), ",")
	assert.ElementsMatch(t, []string{"pre-install", "pre-upgrade"}, hooks)
	c := container(schemaJob)
	assert.Equal(t, []string{"schema", "apply", "-f", "/setup/schema.yaml"}, stringsOf(list(c, "args")))
	assert.Equal(t, "Never", str(schemaJob, "spec", "template", "spec", "restartPolicy"))
	assertSecretsFromSecret(t, "the schema Job", schemaJob, "qiflow-credentials")
	assertSecretKeyRef(t, "the schema Job", envOf(c)["PGPASSWORD"], "qiflow-credentials", "database-password")
	setup := configMaps["rel-qiflow-setup"]
	require.NotNil(t, setup, "the setup ConfigMap")
	shipped, err := os.ReadFile("schema.yaml")
	require.NoError(t, err)
	assert.Equal(t, string(shipped), str(setup, "data", "schema.yaml"))
	assert.Contains(t, str(setup, "metadata", "annotations", "helm.sh/hook"), "pre-install", "the setup ConfigMap exists before the Jobs run")
	assert.Less(t, weight(t, setup), weight(t, schemaJob), "the setup ConfigMap is made before the schema Job")
	topicsJob := jobs["rel-qiflow-topics"]
	require.NotNil(t, topicsJob, "the topics Job")
	assert.Equal(t, []string{"topics", "apply", "-f", "/setup/topics.yaml"}, stringsOf(list(container(topicsJob), "args")))
	assertSecretsFromSecret(t, "the topics Job", topicsJob, "qiflow-credentials")
	assertSecretKeyRef(t, "the topics Job", envOf(container(topicsJob))["REDPANDA_PASSWORD"], "qiflow-credentials", "redpanda-password")
	assert.Equal(t, "true", str(envOf(container(topicsJob))["REDPANDA_TLS"], "value"), "topics apply reads TLS from REDPANDA_TLS only")
	assert.Equal(t, "SCRAM-SHA-512", str(envOf(container(topicsJob))["REDPANDA_SASL_MECHANISM"], "value"))
	assert.Less(t, weight(t, topicsJob), weight(t, schemaJob))

	// Off by default: it needs prometheus-operator's CRD.
	assert.Empty(t, byKind(render(t), "ServiceMonitor"))
}

func weight(t *testing.T, o object) int {
	t.Helper()
	var w int
	_, err := fmt.Sscan(str(o, "metadata", "annotations", "helm.sh/hook-weight"), &w)
	require.NoError(t, err, "%s has a hook weight", o.name())
	return w
}

// assertSecretsFromSecret checks that every password or URL variable of a
// workload comes from the named Secret, either as a file of it or by
// secretKeyRef, and that it takes no environment wholesale.
func assertSecretsFromSecret(t *testing.T, what string, o object, secret string) {
	t.Helper()
	c := container(o)
	for name, e := range envOf(c) {
		switch {
		case strings.HasSuffix(name, "_FILE"):
			assert.True(t, strings.HasPrefix(str(e, "value"), secretMount(o, secret)+"/"), "%s: %s is a file of the Secret %s", what, name, secret)
		case strings.Contains(name, "PASSWORD"):
			assertSecretKeyRef(t, what+": "+name, e, secret, "")
		}
		assert.NotRegexp(t, `://[^/@]*:[^/@]*@`, str(e, "value"), "%s: %s carries no password", what, name)
	}
	assert.Empty(t, list(c, "envFrom"), "%s takes no environment wholesale", what)
}

// secretMount returns where a workload mounts the named Secret, or "".
func secretMount(o object, secret string) string {
	for _, v := range list(o, "spec", "template", "spec", "volumes") {
		if str(v, "secret", "secretName") == secret {
			for _, m := range list(container(o), "volumeMounts") {
				if str(m, "name") == str(v, "name") {
					return str(m, "mountPath")
				}
			}
		}
	}
	return ""
}

// assertPasswordFile checks that the variable names the key's file in the
// workload's mount of the Secret.
func assertPasswordFile(t *testing.T, what string, o object, variable, secret, key string) {
	t.Helper()
	mount := secretMount(o, secret)
	require.NotEmpty(t, mount, "%s mounts the Secret %s", what, secret)
	assert.Equal(t, mount+"/"+key, str(envOf(container(o))[variable], "value"), "%s: %s", what, variable)
}

// assertSecretKeyRef checks that an env entry is taken from the Secret's
// key (any key when key is empty), with no value of its own.
func assertSecretKeyRef(t *testing.T, what string, env any, secret, key string) {
	t.Helper()
	require.NotNil(t, env, what)
	assert.Nil(t, get(env, "value"), "%s has no value of its own", what)
	assert.Equal(t, secret, str(env, "valueFrom", "secretKeyRef", "name"), "%s comes from the Secret", what)
	if key != "" {
		assert.Equal(t, key, str(env, "valueFrom", "secretKeyRef", "key"), what)
	}
}

// TestHelmChartTakesTheDatabaseURLFromTheSecret renders the chart with a
// URL kept whole in the Secret, as database operators publish it.
func TestHelmChartTakesTheDatabaseURLFromTheSecret(t *testing.T) {
	objects := render(t, "--set", "database.urlSecretKey=uri", "--set", "secrets.existingSecret=timescale-app")
	workloads := byKind(objects, "Deployment")
	for name, job := range byKind(objects, "Job") {
		workloads[name] = job
	}
	require.Len(t, workloads, 5)
	for name, o := range workloads {
		env := envOf(container(o))
		assertSecretKeyRef(t, name+": DATABASE_URL", env["DATABASE_URL"], "timescale-app", "uri")
		assert.NotContains(t, env, "QIFLOW_DATABASE_PASSWORD_FILE", "%s: the URL carries the password", name)
		assert.NotContains(t, env, "PGPASSWORD", "%s: the URL carries the password", name)
		assertSecretsFromSecret(t, name, o, "timescale-app")
	}
}

func TestHelmChartRefusesAPipelineThatIsNotInTheConfigMap(t *testing.T) {
	_, err := helm(t, "template", "rel", chartDir, "--set", "ingest.prices.file=price.yaml")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `ingest.prices.file: "price.yaml" is not a file of the pipelines ConfigMap (analytics.yaml, ohlcv.yaml, prices.yaml, schema.yaml, topics.yaml)`)
	_, err = helm(t, "template", "rel", chartDir, "--set", "secrets.existingSecret=")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "secrets.existingSecret is required")
}

func TestHelmChartRefusesAPasswordInTheValues(t *testing.T) {
	_, err := helm(t, "template", "rel", chartDir, "--set", "database.url=postgres://qiflow:hunter2@timescaledb:5432/qiflow")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "database.url carries a password: put the whole URL in the Secret and set database.urlSecretKey")
	_, output, _ := strings.Cut(err.Error(), "\n") // after the command line
	assert.NotContains(t, output, "hunter2", "Helm's error does not repeat the password")
}
