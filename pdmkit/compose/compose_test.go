package compose_test

import (
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pdmstream/pdm/pdmkit/compose"
	"github.com/pdmstream/pdm/pdmkit/grafana"
)

const (
	composePath = "../../docker-compose.yml"
	topicsPath  = "../../deployments/kafka/topics.txt"
	envShPath   = "../../deployments/stack/env.sh"
)

// knownEnv are the PDM_* variables the services read; a name outside this
// list in docker-compose.yml is a typo or a setting no code looks at.
var knownEnv = map[string]bool{
	"PDM_MODELS_TRUSTED_KEYS": true, "PDM_SIGNING_KEY_FILE": true,
	"PDM_MQTT_URL":      true,
	"PDM_KAFKA_BROKERS": true,
	"PDM_INFLUX_URL":    true,
	"PDM_INFLUX_TOKEN":  true,
	"PDM_INFLUX_ORG":    true,
	"PDM_INFLUX_BUCKET": true,
	"PDM_HTTP_ADDR":     true,
	"PDM_LOG_LEVEL":     true,
	"PDM_LOG_FORMAT":    true,
	// scorer (and the trainer, to publish)
	"PDM_API_TOKEN": true,
	// trainer only
	"PDM_INFLUX_RESAMPLE": true,
	"PDM_SCORER_URL":      true,
	"PDM_TRAINER_URL":     true,
	"PDM_TRAINER_DATA":    true,
	"PDM_TRAINER_TOKEN":   true,
	// edge-agent only
	"PDM_SITE":        true,
	"PDM_AGENT_ID":    true,
	"PDM_ASSETS":      true,
	"PDM_SPOOL_DIR":   true,
	"PDM_AGENT_TOKEN": true,
}

func load(t *testing.T) *compose.File {
	t.Helper()
	f, err := compose.Load(composePath)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return f
}

func service(t *testing.T, f *compose.File, name string) compose.Service {
	t.Helper()
	s, ok := f.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	return s
}

// serviceNames returns the services in sorted order, so failures read the
// same on every run.
func serviceNames(f *compose.File) []string {
	names := make([]string, 0, len(f.Services))
	for name := range f.Services {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// stackDefaults reads the default ports from deployments/stack/env.sh, the
// one place the local stack defines them.
func stackDefaults(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(envShPath)
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for _, m := range regexp.MustCompile(`\$\{(PDM_\w+_PORT):=(\d+)\}`).FindAllStringSubmatch(string(raw), -1) {
		defaults[m[1]] = m[2]
	}
	if len(defaults) == 0 {
		t.Fatalf("%s: no PDM_*_PORT defaults found", envShPath)
	}
	return defaults
}

func TestInfrastructure(t *testing.T) {
	f := load(t)
	defaults := stackDefaults(t)
	tests := []struct {
		service, image, portVar string
		target                  int
	}{
		{"mosquitto", "eclipse-mosquitto", "PDM_MQTT_PORT", 1883},
		{"kafka", "apache/kafka", "PDM_KAFKA_PORT", 9092},
		{"influxdb", "influxdb", "PDM_INFLUX_PORT", 8086},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s := service(t, f, tt.service)
			if family, _, _ := strings.Cut(s.Image, ":"); family != tt.image {
				t.Errorf("image %q, want %s:<tag>", s.Image, tt.image)
			}
			if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 || s.Healthcheck.Disable {
				t.Errorf("no healthcheck")
			}
			var found bool
			for _, p := range s.Ports {
				if p.Target != tt.target {
					continue
				}
				found = true
				if p.Published != defaults[tt.portVar] {
					t.Errorf("port %d published on %q, want %s (the local stack's %s)", p.Target, p.Published, defaults[tt.portVar], tt.portVar)
				}
				if p.HostIP != "127.0.0.1" {
					t.Errorf("port %d published on host address %q, want 127.0.0.1", p.Target, p.HostIP)
				}
			}
			if !found {
				t.Errorf("port %d not published", tt.target)
			}
		})
	}
}

func TestServices(t *testing.T) {
	f := load(t)
	tests := []struct {
		service, cmdPath, command, httpAddr string
	}{
		{"edge-agent", "./edge-agent/cmd/edge-agent", "", ":9101"},
		{"ingest-bridge", "./ingest/cmd/ingest", "bridge", ":9102"},
		{"ingest-historian", "./ingest/cmd/ingest", "historian", ":9103"},
		{"scorer", "./scorer/cmd/scorer", "serve", ":8080"},
		{"trainer", "./trainer/cmd/trainer", "serve", ":9104"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s := service(t, f, tt.service)
			if s.Build == nil {
				t.Fatal("no build section")
			}
			if got := s.Build.Args["CMD_PATH"]; got != tt.cmdPath {
				t.Errorf("build arg CMD_PATH %q, want %q", got, tt.cmdPath)
			}
			if got := s.Command.String(); got != tt.command {
				t.Errorf("command %q, want %q", got, tt.command)
			}
			if got := s.Environment["PDM_HTTP_ADDR"]; got != tt.httpAddr {
				t.Errorf("PDM_HTTP_ADDR %q, want %q", got, tt.httpAddr)
			}
			if s.Healthcheck == nil || s.Healthcheck.Test.String() != "CMD /app healthcheck" {
				t.Errorf("healthcheck %v, want the binary's own probe: CMD /app healthcheck", s.Healthcheck)
			}
			if len(s.DependsOn) == 0 {
				t.Error("depends on nothing")
			}
			for dep, d := range s.DependsOn {
				target := service(t, f, dep)
				want := "service_healthy"
				if oneShot(target) {
					want = "service_completed_successfully"
				}
				if d.Condition != want {
					t.Errorf("depends_on %s: condition %q, want %q", dep, d.Condition, want)
				}
			}
		})
	}
}

// oneShot reports whether s is a job that runs once and exits (kafka-init,
// model-keys) rather than a service: others wait for it to complete, and it
// serves no metrics.
func oneShot(s compose.Service) bool {
	return s.Restart == "no" || (s.Build == nil && s.Healthcheck == nil)
}

func TestEnvironmentNames(t *testing.T) {
	f := load(t)
	for _, name := range serviceNames(f) {
		for _, k := range f.Services[name].Environment.Keys() {
			if strings.HasPrefix(k, "PDM_") && !knownEnv[k] {
				t.Errorf("service %s: %s is not a variable the services read", name, k)
			}
		}
	}
}

func TestDockerfiles(t *testing.T) {
	f := load(t)
	root := filepath.Dir(composePath)
	nonRootUser := regexp.MustCompile(`(?m)^USER\s+(\S+)`)
	for _, name := range serviceNames(f) {
		s := f.Services[name]
		if s.Build == nil {
			continue
		}
		t.Run(name, func(t *testing.T) {
			if s.Build.Context != "." {
				t.Errorf("build context %q, want the repository root so go.work resolves", s.Build.Context)
			}
			path := filepath.Join(root, s.Build.DockerfilePath())
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("dockerfile: %v", err)
			}
			text := string(raw)
			users := nonRootUser.FindAllStringSubmatch(text, -1)
			if len(users) == 0 {
				t.Errorf("%s: no USER", path)
			} else if u := users[len(users)-1][1]; u == "root" || strings.HasPrefix(u, "0") || strings.HasPrefix(u, "root:") {
				t.Errorf("%s: final USER is %s", path, u)
			}
			if !strings.Contains(text, "CGO_ENABLED=0") {
				t.Errorf("%s: binary not built with CGO_ENABLED=0", path)
			}
		})
	}
}

func TestKafkaInitCreatesTopics(t *testing.T) {
	f := load(t)
	topics, err := compose.LoadTopics(topicsPath)
	if err != nil {
		t.Fatal(err)
	}
	s := service(t, f, "kafka-init")
	if family, _, _ := strings.Cut(s.Image, ":"); family != "apache/kafka" {
		t.Errorf("kafka-init image %q, want apache/kafka", s.Image)
	}
	if d := s.DependsOn["kafka"]; d.Condition != "service_healthy" {
		t.Errorf("kafka-init depends_on kafka with condition %q, want service_healthy", d.Condition)
	}
	script := s.Command.String()
	for _, topic := range topics {
		t.Run(topic.Name, func(t *testing.T) {
			re := regexp.MustCompile(`(?m)--topic ` + regexp.QuoteMeta(topic.Name) + ` --partitions (\d+)(.*)$`)
			m := re.FindStringSubmatch(script)
			if m == nil {
				t.Fatalf("kafka-init does not create %s with --partitions", topic.Name)
			}
			if want := strconv.Itoa(topic.Partitions); m[1] != want {
				t.Errorf("%s: %s partitions, want %s", topic.Name, m[1], want)
			}
			for k, v := range topic.Configs {
				if !strings.Contains(m[2], "--config "+k+"="+v) {
					t.Errorf("%s: missing --config %s=%s", topic.Name, k, v)
				}
			}
		})
	}
}

func TestServiceEnv(t *testing.T) {
	env, err := compose.ServiceEnv(composePath, "ingest-bridge")
	if err != nil {
		t.Fatal(err)
	}
	if env["PDM_KAFKA_BROKERS"] == "" || env["PDM_HTTP_ADDR"] != ":9102" {
		t.Errorf("ingest-bridge env = %v", env)
	}
	if _, err := compose.ServiceEnv(composePath, "no-such-service"); err == nil {
		t.Error("no error for a missing service")
	}
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "docker-compose.yml")
	const doc = `
x-env: &env
  A: 1
services:
  s:
    image: "img:${TAG:-1}"
    build: ./ctx
    command: run now
    environment:
      <<: *env
      B: $${LITERAL}
      C:
    ports:
      - "9000"
      - "8000:80/udp"
      - target: 70
        published: "7000"
        host_ip: 127.0.0.1
    depends_on: [t]
    healthcheck:
      test: ["CMD", "true"]
  t:
    image: other
    environment: ["X=1", "Y"]
    depends_on:
      s: {condition: service_healthy}
`
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := compose.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, u := f.Services["s"], f.Services["t"]
	checks := []struct {
		name      string
		got, want any
	}{
		{"image default", s.Image, "img:1"},
		{"build short form", s.Build.DockerfilePath(), "ctx/Dockerfile"},
		{"string command", s.Command, compose.Command{"run now"}},
		{"env map with merge", s.Environment, compose.Environment{"A": "1", "B": "${LITERAL}", "C": ""}},
		{"env list", u.Environment, compose.Environment{"X": "1", "Y": ""}},
		{"ports", s.Ports, []compose.Port{{Target: 9000}, {Published: "8000", Target: 80, Protocol: "udp"}, {HostIP: "127.0.0.1", Published: "7000", Target: 70}}},
		{"depends_on list", s.DependsOn, compose.DependsOn{"t": {Condition: "service_started"}}},
		{"depends_on map", u.DependsOn, compose.DependsOn{"s": {Condition: "service_healthy"}}},
		{"healthcheck", s.Healthcheck.Test, compose.Command{"CMD", "true"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s: got %#v, want %#v", c.name, c.got, c.want)
		}
	}
	f, err = compose.LoadWith(path, func(k string) (string, bool) { return map[string]string{"TAG": "2"}[k], k == "TAG" })
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Services["s"].Image; got != "img:2" {
		t.Errorf("image with TAG=2: %q", got)
	}
}

func TestInterpolate(t *testing.T) {
	env := map[string]string{"SET": "v", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want string
		err      bool
	}{
		{in: "plain", want: "plain"},
		{in: "$$SYS/x", want: "$SYS/x"},
		{in: "$SET-$UNSET.", want: "v-."},
		{in: "${SET}", want: "v"},
		{in: "${UNSET:-d}", want: "d"},
		{in: "${EMPTY:-d}", want: "d"},
		{in: "${EMPTY-d}", want: ""},
		{in: "${UNSET-d}", want: "d"},
		{in: "${SET:?need}", want: "v"},
		{in: "${EMPTY:?need}", err: true},
		{in: "${UNSET?need}", err: true},
		{in: "${open", err: true},
		{in: "cost $5", want: "cost $5"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := compose.Interpolate(tt.in, lookup)
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("Interpolate(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestLoadTopics(t *testing.T) {
	topics, err := compose.LoadTopics(topicsPath)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]compose.Topic{}
	for _, tp := range topics {
		byName[tp.Name] = tp
	}
	for name, partitions := range map[string]int{"pdm.readings": 6, "pdm.readings.dlq": 3, "pdm.scores": 6, "pdm.alerts": 3, "pdm.models": 1} {
		if got := byName[name].Partitions; got != partitions {
			t.Errorf("%s: %d partitions, want %d", name, got, partitions)
		}
	}
	if got := byName["pdm.models"].Configs["cleanup.policy"]; got != "compact" {
		t.Errorf("pdm.models cleanup.policy %q, want compact", got)
	}

	bad := []string{"a", "a x -", "a 0 -", "a 1 nokv", "a 1 -\na 2 -"}
	for _, text := range bad {
		path := filepath.Join(t.TempDir(), "topics.txt")
		if err := os.WriteFile(path, []byte(text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := compose.LoadTopics(path); err == nil {
			t.Errorf("LoadTopics(%q): no error", text)
		}
	}
}

func TestPartitionsOverride(t *testing.T) {
	tp := compose.Topic{Name: "pdm.readings.dlq", Partitions: 3}
	if got := compose.PartitionsEnv(tp.Name); got != "PDM_READINGS_DLQ_PARTITIONS" {
		t.Errorf("PartitionsEnv = %s", got)
	}
	tests := []struct {
		env  string
		want int
		err  bool
	}{{"", 3, false}, {"12", 12, false}, {"0", 0, true}, {"x", 0, true}}
	for _, tt := range tests {
		got, err := tp.PartitionsFrom(func(string) string { return tt.env })
		if got != tt.want || (err != nil) != tt.err {
			t.Errorf("override %q: %d, %v", tt.env, got, err)
		}
	}
}

func TestUnread(t *testing.T) {
	env := map[string]string{"PDM_B": "1", "PDM_A": "2", "TZ": "UTC", "PDM_KNOWN": "3"}
	if got := compose.Unread(env, []string{"PDM_KNOWN"}); !slices.Equal(got, []string{"PDM_A", "PDM_B"}) {
		t.Fatalf("unread %v, want [PDM_A PDM_B]", got)
	}
}

// mount is one entry of a service's volumes: a host path (./...) or a
// named volume, mounted at Target.
type mount struct{ Source, Target, Mode string }

func mounts(t *testing.T, s compose.Service) []mount {
	t.Helper()
	var out []mount
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || len(parts) > 3 {
			t.Fatalf("volume %q: want source:target[:mode]", v)
		}
		m := mount{Source: parts[0], Target: parts[1]}
		if len(parts) == 3 {
			m.Mode = parts[2]
		}
		out = append(out, m)
	}
	return out
}

// TestMounts: every file or folder a service mounts from the repository
// exists, read-only; every named volume is declared.
func TestMounts(t *testing.T) {
	f := load(t)
	root := filepath.Dir(composePath)
	for _, name := range serviceNames(f) {
		for _, m := range mounts(t, f.Services[name]) {
			if !strings.HasPrefix(m.Source, "./") {
				if _, ok := f.Volumes[m.Source]; !ok {
					t.Errorf("service %s: volume %s is not declared under volumes:", name, m.Source)
				}
				continue
			}
			if _, err := os.Stat(filepath.Join(root, m.Source)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, m.Source, err)
			}
			if m.Mode != "ro" {
				t.Errorf("service %s mounts %s writable, want :ro", name, m.Source)
			}
		}
	}
}

// containerPort reports whether service listens on port inside the
// compose network: a published port's target or its PDM_HTTP_ADDR.
func containerPort(s compose.Service, port string) bool {
	for _, p := range s.Ports {
		if strconv.Itoa(p.Target) == port {
			return true
		}
	}
	return strings.TrimPrefix(s.Environment["PDM_HTTP_ADDR"], ":") == port
}

// TestPrometheus: Prometheus scrapes every Go service, on its
// PDM_HTTP_ADDR, and nothing else.
func TestPrometheus(t *testing.T) {
	f := load(t)
	s := service(t, f, "prometheus")
	if family, _, _ := strings.Cut(s.Image, ":"); family != "prom/prometheus" {
		t.Errorf("image %q, want prom/prometheus:<tag>", s.Image)
	}
	if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
		t.Error("no healthcheck")
	}
	var config string
	for _, m := range mounts(t, s) {
		if m.Target == "/etc/prometheus/prometheus.yml" {
			config = filepath.Join(filepath.Dir(composePath), m.Source)
		}
	}
	if !slices.Contains(s.Command, "--config.file=/etc/prometheus/prometheus.yml") || config == "" {
		t.Fatalf("command %v, mounts %v: want --config.file=/etc/prometheus/prometheus.yml mounted from the repository", s.Command, s.Volumes)
	}
	raw, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	var pc struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			MetricsPath   string `yaml:"metrics_path"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(raw, &pc); err != nil {
		t.Fatalf("%s: %v", config, err)
	}
	var got, want []string
	for _, sc := range pc.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			t.Errorf("job %s: metrics_path %q, the services serve /metrics", sc.JobName, sc.MetricsPath)
		}
		for _, st := range sc.StaticConfigs {
			got = append(got, st.Targets...)
		}
	}
	for _, name := range serviceNames(f) {
		if svc := f.Services[name]; svc.Build != nil && !oneShot(svc) {
			want = append(want, name+svc.Environment["PDM_HTTP_ADDR"])
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("%s scrapes %v, want every service on its PDM_HTTP_ADDR: %v", config, got, want)
	}
}

// TestGrafana: the grafana service mounts the provisioning and the
// dashboards where the provisioning expects them, and its data sources
// are the compose services with InfluxDB's org, bucket and token.
func TestGrafana(t *testing.T) {
	f := load(t)
	s := service(t, f, "grafana")
	if family, _, _ := strings.Cut(s.Image, ":"); family != "grafana/grafana-oss" && family != "grafana/grafana" {
		t.Errorf("image %q, want grafana/grafana-oss:<tag>", s.Image)
	}
	if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
		t.Error("no healthcheck")
	}
	var published bool
	for _, p := range s.Ports {
		published = published || p.Target == 3000 && p.HostIP == "127.0.0.1"
	}
	if !published {
		t.Errorf("ports %v: want 3000 published on 127.0.0.1", s.Ports)
	}
	for _, dep := range []string{"influxdb", "prometheus"} {
		if d := s.DependsOn[dep]; d.Condition != "service_healthy" {
			t.Errorf("depends_on %s: condition %q, want service_healthy", dep, d.Condition)
		}
	}
	at := map[string]string{} // repository path → container path
	for _, m := range mounts(t, s) {
		at[m.Source] = m.Target
	}
	const dir = "./deployments/grafana"
	if got := at[dir+"/provisioning"]; got != "/etc/grafana/provisioning" {
		t.Errorf("%s/provisioning mounted at %q, want /etc/grafana/provisioning", dir, got)
	}
	grafanaDir := filepath.Join(filepath.Dir(composePath), dir)
	providers, err := grafana.LoadProviders(grafanaDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range providers {
		if got := at[dir+"/dashboards"]; got != p.Options.Path {
			t.Errorf("provider %s loads %s, but %s/dashboards is mounted at %q", p.Name, p.Options.Path, dir, got)
		}
	}
	if home := s.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; home != "" {
		rel, ok := strings.CutPrefix(home, at[dir+"/dashboards"]+"/")
		if _, err := os.Stat(filepath.Join(grafanaDir, "dashboards", rel)); !ok || err != nil {
			t.Errorf("home dashboard %s is not a mounted dashboard", home)
		}
	}

	sources, err := grafana.LoadDatasources(grafanaDir)
	if err != nil {
		t.Fatal(err)
	}
	influx := service(t, f, "influxdb").Environment
	for _, ds := range sources {
		u, err := url.Parse(ds.URL)
		if err != nil {
			t.Errorf("data source %s: url %q: %v", ds.Name, ds.URL, err)
			continue
		}
		target, ok := f.Services[u.Hostname()]
		if !ok || !containerPort(target, u.Port()) {
			t.Errorf("data source %s: %s is not a compose service's port", ds.Name, u.Host)
		}
		if ds.Type != "influxdb" {
			continue
		}
		if ds.JSONData["organization"] != influx["DOCKER_INFLUXDB_INIT_ORG"] || ds.JSONData["defaultBucket"] != influx["DOCKER_INFLUXDB_INIT_BUCKET"] {
			t.Errorf("data source %s: organization %v, bucket %v; influxdb is set up with %s, %s", ds.Name,
				ds.JSONData["organization"], ds.JSONData["defaultBucket"], influx["DOCKER_INFLUXDB_INIT_ORG"], influx["DOCKER_INFLUXDB_INIT_BUCKET"])
		}
		tok, _ := ds.Secure["token"].(string)
		name := strings.Trim(strings.TrimPrefix(tok, "$"), "{}")
		if v, ok := s.Environment[name]; !ok || v != influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"] {
			t.Errorf("data source %s: token %q: grafana's %s is %q, influxdb's admin token %q", ds.Name, tok, name, v, influx["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"])
		}
	}
}
