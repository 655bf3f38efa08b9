package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestSecretsNeverLogged runs the whole pipeline secured, every process
// the real binary configured through the environment alone: an edge agent
// as a gateway user of a private Mosquitto (TLS, passwords, ACL), the
// ingest bridge and historian, a scorer publishing alerts to that broker
// and a trainer, all on a private Kafka that wants SASL/SCRAM-SHA-512 over
// TLS, the passwords read from files (the *_FILE variables), the API
// tokens from the environment (scorer) and from files (trainer). Beside
// them a bridge with a wrong MQTT password and a scorer with a wrong Kafka
// password, and API calls with a wrong token, so the failure paths log
// too. Once the run is shown to be real (the agent's readings in the
// readings topic, scored, in InfluxDB; the scorer's and the trainer's API
// answering their tokens, writes included), no process's log, /metrics or
// /readyz holds any of the secrets, and each service's logged
// configuration shows its secrets masked.
func TestSecretsNeverLogged(t *testing.T) {
	began := time.Now()
	influxURL := stacktest.InfluxURL(t) // skips under -short

	// Only the files may carry the passwords: a variable of the test's
	// environment (a secured shared stack's) would win over them. The
	// shared InfluxDB's token, when it has one, is passed on in a file of
	// the test's, for the test and the services alike.
	influxToken := stacktest.InfluxToken(t)
	for _, k := range []string{"PDM_MQTT_PASSWORD", "PDM_MQTT_PASSWORD_FILE", "PDM_KAFKA_SASL_PASSWORD",
		"PDM_KAFKA_SASL_PASSWORD_FILE", "PDM_INFLUX_TOKEN", "PDM_INFLUX_TOKEN_FILE", "PDM_API_TOKEN", "PDM_API_TOKEN_FILE",
		"PDM_API_READ_TOKEN", "PDM_API_READ_TOKEN_FILE", "PDM_TRAINER_TOKEN", "PDM_TRAINER_TOKEN_FILE",
		"PDM_TRAINER_READ_TOKEN", "PDM_TRAINER_READ_TOKEN_FILE", "PDM_AGENT_TOKEN", "PDM_AGENT_TOKEN_FILE",
		"PDM_AGENT_READ_TOKEN", "PDM_AGENT_READ_TOKEN_FILE", "PDM_SIGNING_KEY", "PDM_SIGNING_KEY_FILE"} {
		if _, ok := os.LookupEnv(k); ok {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	if influxToken != "" {
		f := filepath.Join(t.TempDir(), "influx.token")
		if err := os.WriteFile(f, []byte(influxToken+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PDM_INFLUX_TOKEN_FILE", f)
	}

	// The brokers start side by side: Kafka on its own goroutine (a
	// failure there ends that goroutine and fails the test, which the
	// test goroutine then stops), Mosquitto, the binaries and the
	// database on the test's. The cleanup waits for the goroutine, so the
	// test never ends under a starting cluster.
	var cluster *stacktest.Cluster
	kafkaUp := make(chan struct{})
	t.Cleanup(func() { <-kafkaUp })
	go func() {
		defer close(kafkaUp)
		cluster = stacktest.StartSecureKafka(t, 1)
	}()
	mq := stacktest.StartSecureMosquitto(t)
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/edge-agent/cmd/edge-agent", "github.com/pdmstream/pdm/ingest/cmd/ingest",
		"github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	agentBin, ingestBin, scorerBin, trainerBin := bins[0], bins[1], bins[2], bins[3]
	bucket := stacktest.InfluxBucket(t)
	db, _, _ := strings.Cut(bucket, "/")
	<-kafkaUp
	if cluster == nil {
		t.FailNow() // StartSecureKafka said why
	}
	t.Logf("brokers up, binaries built in %s", time.Since(began).Round(100*time.Millisecond))

	// The private cluster takes the services' default topic names, so
	// no topic needs a flag.
	admin := cluster.Conn("admin")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tp := range []struct {
		name       string
		partitions int
		cfg        map[string]string
	}{{wire.TopicReadings, 3, nil}, {"pdm.readings.dlq", 1, nil}, {wire.TopicScores, 3, nil}, {wire.TopicAlerts, 1, nil},
		{"pdm.models", 1, map[string]string{"cleanup.policy": "compact"}}, {wire.TopicRetrain, 1, nil}} {
		if err := stacktest.CreateTopic(ctx, admin, tp.name, tp.partitions, tp.cfg); err != nil {
			t.Fatal(err)
		}
	}

	// Every secret of the run, by what it is.
	type secret struct{ kind, value string }
	var secrets []secret
	dir := t.TempDir()
	file := func(name, value string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(value+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	random := func(kind string) string {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		v := hex.EncodeToString(b)
		secrets = append(secrets, secret{kind, v})
		return v
	}
	const site, gateway = "plant1", "gw-plant1" // deployments/mosquitto/gateways.txt
	mqttFile := map[string]string{}
	for _, u := range []string{gateway, "bridge", "scorer"} {
		secrets = append(secrets, secret{"MQTT password of " + u, mq.Password(u)})
		mqttFile[u] = file("mqtt-"+u+".password", mq.Password(u))
	}
	kafkaFile := map[string]string{}
	for _, u := range []string{"ingest", "scorer", "trainer"} {
		secrets = append(secrets, secret{"Kafka password of " + u, cluster.Password(u)})
		kafkaFile[u] = file("kafka-"+u+".password", cluster.Password(u))
	}
	if _, password, ok := strings.Cut(influxToken, ":"); ok {
		secrets = append(secrets, secret{"InfluxDB password", password}) // InfluxDB 1.8's token is user:password
	} else if influxToken != "" {
		secrets = append(secrets, secret{"InfluxDB token", influxToken})
	}
	wrongMQTT := file("mqtt-wrong.password", random("wrong MQTT password"))
	wrongKafka := file("kafka-wrong.password", random("wrong Kafka password"))
	scorerWrite, scorerRead := random("scorer API write token"), random("scorer API read token")
	trainerWrite, trainerRead := random("trainer API write token"), random("trainer API read token")
	agentWrite := random("edge agent control API token")
	wrongToken := random("wrong API token")
	// The trainer's signing key: each base64 line of the PEM is a secret.
	pem := modeltest.PrivateKeyPEM(t)
	for _, l := range strings.Split(pem, "\n") {
		if l != "" && !strings.HasPrefix(l, "-----") {
			secrets = append(secrets, secret{"trainer signing key", l})
		}
	}

	mqttEnv := func(user, passwordFile string) []string {
		return []string{"PDM_MQTT_URL=" + mq.URL(), "PDM_MQTT_TLS_CA_FILE=" + mq.CAFile(),
			"PDM_MQTT_USERNAME=" + user, "PDM_MQTT_PASSWORD_FILE=" + passwordFile}
	}
	kafkaEnv := func(user, passwordFile string) []string {
		return []string{"PDM_KAFKA_BROKERS=" + strings.Join(cluster.Brokers(), ","), "PDM_KAFKA_TLS_CA_FILE=" + cluster.CAFile(),
			"PDM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "PDM_KAFKA_SASL_USERNAME=" + user, "PDM_KAFKA_SASL_PASSWORD_FILE=" + passwordFile}
	}
	influxEnv := []string{"PDM_INFLUX_URL=" + influxURL, "PDM_INFLUX_BUCKET=" + bucket}
	// debug: the most the services say, the agent's configuration included.
	cat := func(parts ...[]string) []string {
		out := []string{"PDM_LOG_LEVEL=debug"}
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}

	type service struct {
		name  string
		proc  *stacktest.Proc
		addr  string // its HTTP server: /metrics, /readyz
		ready string // its readiness path
	}
	var services []*service
	start := func(name, bin string, env []string, ready string, args ...string) *service {
		addr := stacktest.FreeAddr(t)
		env = append(env, "PDM_HTTP_ADDR="+addr)
		s := &service{name: name, addr: addr, ready: ready}
		s.proc = stacktest.Start(t, env, bin, args...)
		services = append(services, s)
		return s
	}

	bridge := start("bridge", ingestBin, cat(mqttEnv("bridge", mqttFile["bridge"]), kafkaEnv("ingest", kafkaFile["ingest"]),
		[]string{"PDM_MQTT_CLIENT_ID=" + stacktest.Unique("secrets-bridge")}), "/readyz", "bridge")
	historian := start("historian", ingestBin, cat(kafkaEnv("ingest", kafkaFile["ingest"]), influxEnv), "/readyz", "historian")
	trainerAddr := stacktest.FreeAddr(t) // the scorer's console links to it
	scorer := start("scorer", scorerBin, cat(mqttEnv("scorer", mqttFile["scorer"]), kafkaEnv("scorer", kafkaFile["scorer"]), influxEnv,
		[]string{"PDM_API_TOKEN=" + scorerWrite, "PDM_API_READ_TOKEN=" + scorerRead, trustTestKey(),
			"PDM_SCORER_GROUP=" + stacktest.Unique("secrets-scorer"), "PDM_TRAINER_URL=http://" + trainerAddr}), "/v2/health/ready", "serve")
	scorerURL := "http://" + scorer.addr
	trainerEnv := cat(kafkaEnv("trainer", kafkaFile["trainer"]), influxEnv, []string{
		"PDM_SCORER_URL=" + scorerURL, "PDM_API_TOKEN_FILE=" + file("scorer-write.token", scorerWrite),
		"PDM_TRAINER_TOKEN_FILE=" + file("trainer-write.token", trainerWrite),
		"PDM_TRAINER_READ_TOKEN_FILE=" + file("trainer-read.token", trainerRead),
		"PDM_SIGNING_KEY_FILE=" + file("signing.pem", pem), "PDM_TRAINER_DATA=" + t.TempDir(),
		"PDM_TRAINER_GROUP=" + stacktest.Unique("secrets-trainer"), "PDM_HTTP_ADDR=" + trainerAddr})
	trainer := &service{name: "trainer", addr: trainerAddr, ready: "/readyz"}
	trainer.proc = stacktest.Start(t, trainerEnv, trainerBin, "serve")
	services = append(services, trainer)
	// The failure paths: a bridge the broker refuses, a scorer Kafka
	// refuses (its MQTT and API settings the right ones).
	badBridge := start("bridge with a wrong MQTT password", ingestBin, cat(mqttEnv("bridge", wrongMQTT),
		kafkaEnv("ingest", kafkaFile["ingest"]), []string{"PDM_MQTT_CLIENT_ID=" + stacktest.Unique("secrets-bad-bridge")}), "/readyz", "bridge")
	badScorer := start("scorer with a wrong Kafka password", scorerBin, cat(mqttEnv("scorer", mqttFile["scorer"]),
		kafkaEnv("scorer", wrongKafka), influxEnv, []string{"PDM_API_TOKEN=" + scorerWrite, "PDM_API_READ_TOKEN=" + scorerRead,
			trustTestKey(), "PDM_SCORER_GROUP=" + stacktest.Unique("secrets-bad-scorer")}), "/readyz", "serve")

	for _, s := range []*service{bridge, historian, scorer, trainer} {
		stacktest.WaitReady(t, "http://"+s.addr+s.ready)
	}
	// A gateway of site plant1, two simulated assets at the default rate
	// (the agent takes its rate and limit from flags or the file only).
	assets := []string{"sec-pump", "sec-motor"}
	agent := start("edge-agent", agentBin, cat(mqttEnv(gateway, mqttFile[gateway]), []string{"PDM_SITE=" + site,
		"PDM_AGENT_ID=" + stacktest.Unique("gw"), "PDM_ASSETS=" + assets[0] + "=pump," + assets[1] + "=motor",
		"PDM_SPOOL_DIR=" + t.TempDir(), "PDM_AGENT_TOKEN_FILE=" + file("agent.token", agentWrite)}), "/readyz")
	// A gateway the broker refuses: the agent, unlike the bridge, logs the
	// refused connection.
	badAgent := start("edge-agent with a wrong MQTT password", agentBin, cat(mqttEnv(gateway, wrongMQTT), []string{"PDM_SITE=" + site,
		"PDM_AGENT_ID=" + stacktest.Unique("gw-bad"), "PDM_ASSETS=" + assets[0] + "=pump", "PDM_SPOOL_DIR=" + t.TempDir()}), "/readyz")
	stacktest.WaitReady(t, "http://"+agent.addr+"/readyz")
	t.Logf("services ready in %s", time.Since(began).Round(100*time.Millisecond))

	// The run is real: the agent's first readings are in the secured
	// readings topic, scored on the scores topic, and in InfluxDB.
	const n = 5
	var want []string
	for _, a := range assets {
		for seq := 1; seq <= n; seq++ {
			want = append(want, fmt.Sprintf("%s/%d", a, seq))
		}
	}
	missing := func(have map[string]bool) []string {
		var out []string
		for _, k := range want {
			if !have[k] {
				out = append(out, k)
			}
		}
		return out
	}
	read := map[string]bool{}
	stacktest.Eventually(t, time.Minute, func() bool {
		for _, m := range readAll(t, admin, wire.TopicReadings, 3, 2*n, 2*time.Second) {
			items, err := wire.DefaultLimits().Decode(m.Value, time.Now())
			if err != nil {
				t.Fatalf("readings topic, record %d@%d: %v", m.Partition, m.Offset, err)
			}
			for _, it := range items {
				if it.Reading.Site == site {
					read[fmt.Sprintf("%s/%d", it.Reading.Asset, it.Reading.Seq)] = true
				}
			}
		}
		return len(missing(read)) == 0
	}, "readings missing from the secured readings topic: %v", func() any { return missing(read) })
	scored := map[string]bool{}
	stacktest.Eventually(t, time.Minute, func() bool {
		for _, m := range readAll(t, admin, wire.TopicScores, 3, 2*n, 2*time.Second) {
			var s struct {
				ID   string `json:"id"`
				Site string `json:"site"`
			}
			if json.Unmarshal(m.Value, &s) == nil && s.Site == site {
				scored[s.ID] = true
			}
		}
		return len(missing(scored)) == 0
	}, "readings not scored: %v", func() any { return missing(scored) })
	for _, m := range []struct{ measurement, field string }{{"readings", "seq"}, {"scores", "score"}} {
		var got map[string]int
		stacktest.Eventually(t, time.Minute, func() bool {
			got = influxCounts(t, influxURL, db, site, m.measurement, m.field)
			return got[assets[0]] >= n && got[assets[1]] >= n
		}, "InfluxDB %s per asset: %v, want at least %d each", m.measurement, func() any { return got }, n)
	}

	// The APIs answer their tokens, a write on each included, and refuse a
	// wrong one.
	if code, body := call(t, "GET", scorerURL+"/v1/assets", scorerRead, nil); code != http.StatusOK ||
		!strings.Contains(string(body), assets[0]) {
		t.Fatalf("scorer GET /v1/assets with the read token: %d %s", code, body)
	}
	if code, body := call(t, "PUT", scorerURL+"/v1/models/bearing/versions/1", scorerWrite, forecaster(t)); code != http.StatusCreated {
		t.Fatalf("scorer upload with the write token: %d %s", code, body)
	}
	trainerURL := "http://" + trainerAddr
	if code, body := call(t, "POST", trainerURL+"/v1/jobs", trainerWrite,
		[]byte(`{"site": "`+site+`", "asset": "`+assets[0]+`", "by": "secrets-test"}`)); code != http.StatusAccepted {
		t.Fatalf("trainer POST /v1/jobs with the write token: %d %s", code, body)
	}
	stacktest.Eventually(t, time.Minute, func() bool {
		code, body := call(t, "GET", trainerURL+"/v1/jobs", trainerRead, nil)
		if code != http.StatusOK {
			t.Fatalf("trainer GET /v1/jobs with the read token: %d %s", code, body)
		}
		var list struct {
			Jobs []struct {
				ID, State string
			} `json:"jobs"`
		}
		_ = json.Unmarshal(body, &list)
		for _, j := range list.Jobs {
			if strings.HasPrefix(j.ID, assets[0]+"-") && j.State != "running" && j.State != "" {
				return true
			}
		}
		return false
	}, "the trainer's job for %s did not end", assets[0])
	agentURL := "http://" + agent.addr
	if code, body := call(t, "POST", agentURL+"/v1/assets/"+assets[0]+"/setpoint?load=0.8", agentWrite, nil); code != http.StatusOK {
		t.Fatalf("edge agent POST setpoint with its token: %d %s", code, body)
	}
	for _, c := range []struct{ method, url string }{{"GET", scorerURL + "/v1/assets"}, {"GET", trainerURL + "/v1/jobs"},
		{"PUT", scorerURL + "/v1/assets/" + assets[0] + "/pin"}, {"POST", trainerURL + "/v1/jobs"},
		{"POST", agentURL + "/v1/assets/" + assets[0] + "/repair"}} {
		if code, body := call(t, c.method, c.url, wrongToken, []byte(`{}`)); code != http.StatusUnauthorized {
			t.Fatalf("%s %s with a wrong token: %d %s, want 401", c.method, c.url, code, body)
		}
	}

	// The failure paths ran: each refused client is not ready, says why
	// on /readyz, and logs it (the bridge does not: with paho's connect
	// retry a refused connection is never reported to it).
	for _, f := range []struct {
		s           *service
		logs, ready []string // one of them, lower case
	}{
		{badBridge, nil, []string{"mqtt not connected"}},
		{badAgent, []string{"not authorized", "bad user name or password"}, nil},
		{badScorer, []string{"sasl authentication"}, []string{"not read yet"}}, // /readyz does not say why
	} {
		has := func(text string, any []string) bool {
			for _, w := range any {
				if strings.Contains(strings.ToLower(text), w) {
					return true
				}
			}
			return len(any) == 0
		}
		stacktest.Eventually(t, 30*time.Second, func() bool { return has(f.s.proc.Log(), f.logs) },
			"the %s does not log its refusal (%q):\n%s", f.s.name, f.logs, func() any { return f.s.proc.Log() })
		code, body := get(t, "http://"+f.s.addr+f.s.ready)
		if code == http.StatusOK || !has(body, f.ready) {
			t.Fatalf("the %s's %s: %d %s, want not ready naming %q", f.s.name, f.s.ready, code, body, f.ready)
		}
	}
	t.Logf("run proven in %s: %d readings of %d assets through topic, scores and InfluxDB; APIs and refusals checked",
		time.Since(began).Round(100*time.Millisecond), len(want), len(assets))

	// Now the secrets: every text each process showed.
	type text struct{ where, body string }
	var texts []text
	for _, s := range services {
		for _, p := range []string{"/metrics", s.ready} {
			code, body := get(t, "http://"+s.addr+p)
			if p == "/metrics" && code != http.StatusOK {
				t.Errorf("the %s's /metrics: %d %s", s.name, code, body)
			}
			texts = append(texts, text{s.name + " " + p, body})
		}
	}
	// The logs last, once every service has stopped: shutdown logs too.
	for i := len(services) - 1; i >= 0; i-- {
		services[i].proc.Stop(t)
	}
	for _, s := range services {
		texts = append(texts, text{s.name + " log", s.proc.Log()})
		// Each service logs its configuration, secrets masked.
		if !strings.Contains(s.proc.Log(), "'***'") {
			t.Errorf("the %s's log shows no masked secret ('***'): its configuration was not logged, or not masked", s.name)
		}
	}
	for _, tx := range texts {
		for _, sec := range secrets {
			if strings.Contains(tx.body, sec.value) {
				t.Errorf("the %s holds the %s", tx.where, sec.kind)
			}
		}
	}
	var size int
	for _, tx := range texts {
		size += len(tx.body)
	}
	t.Logf("%d secrets looked for in %d texts (%d bytes: %d logs, /metrics, /readyz); wall time %s",
		len(secrets), len(texts), size, len(services), time.Since(began).Round(100*time.Millisecond))
}

// get returns url's status and body; 0 when it does not answer.
func get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, resp.Body)
	return resp.StatusCode, buf.String()
}
