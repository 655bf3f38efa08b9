package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// TestScorerOnSecuredKafka: a scorer given the kafka section's tls and
// sasl blocks through the environment (the password from the file
// PDM_KAFKA_SASL_PASSWORD_FILE names) reaches a broker that only speaks
// SASL/SCRAM-SHA-512 over TLS: it becomes ready, scores the readings
// written to its readings topic onto its scores topic, and an upload over
// its API lands in the models topic. A scorer with a wrong password never
// becomes ready, and its log names the failed SASL authentication without
// the password.
func TestScorerOnSecuredKafka(t *testing.T) {
	cluster := stacktest.StartSecureKafka(t, 1) // skips under -short
	scorerBin := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer")[0]
	readings, scores := cluster.Topic("readings", 3), cluster.Topic("scores", 3)
	alerts, models := cluster.Topic("alerts", 1), cluster.Topic("models", 1)
	// The environment of the test must not carry a password of its own.
	t.Setenv("PDM_KAFKA_SASL_PASSWORD", "")
	os.Unsetenv("PDM_KAFKA_SASL_PASSWORD")

	start := func(name, password, level string) (*stacktest.Proc, string) {
		secret := filepath.Join(t.TempDir(), name+".password")
		if err := os.WriteFile(secret, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := stacktest.FreeAddr(t)
		p := stacktest.Start(t, []string{
			"PDM_KAFKA_BROKERS=" + strings.Join(cluster.Brokers(), ","),
			"PDM_KAFKA_TLS_CA_FILE=" + cluster.CAFile(),
			"PDM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512",
			"PDM_KAFKA_SASL_USERNAME=scorer",
			"PDM_KAFKA_SASL_PASSWORD_FILE=" + secret,
			"PDM_API_TOKEN=secure", trustTestKey(),
		}, scorerBin, "serve", "-log.level", level,
			"-kafka.group", stacktest.Unique("secure-"+name), "-kafka.readings", readings,
			"-kafka.scores", scores, "-kafka.alerts", alerts, "-kafka.models", models, "-kafka.retrain", "",
			"-kafka.session-timeout", "6s", "-mqtt.url", "", "-influx.url", "", "-http.addr", addr)
		return p, "http://" + addr
	}
	wrong := "not-the-" + cluster.Password("scorer")
	bad, badAPI := start("wrong", wrong, "info")
	good, api := start("scorer", cluster.Password("scorer"), "warn")

	stacktest.WaitReady(t, api+"/v2/health/ready")
	assets := []string{"sec1", "sec2"}
	w := &kafka.Writer{Addr: kafka.TCP(cluster.Brokers()...), Transport: cluster.Conn("ingest").Transport(), Topic: readings,
		Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	defer w.Close()
	sendMachine(t, w, "secure", assets, 1, 50)
	reader := cluster.Conn("admin")
	ids := map[string]bool{}
	stacktest.Eventually(t, time.Minute, func() bool {
		for _, m := range readAll(t, reader, scores, 3, 100, 3*time.Second) {
			var s struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(m.Value, &s) == nil {
				ids[s.ID] = true
			}
		}
		return len(ids) >= 100
	}, "%d of 100 readings scored on the secured broker", func() any { return len(ids) })
	for _, a := range assets {
		for seq := 1; seq <= 50; seq++ {
			if !ids[fmt.Sprintf("%s/%d", a, seq)] {
				t.Fatalf("reading %s/%d not scored; scored: %v", a, seq, ids)
			}
		}
	}

	req, _ := http.NewRequest("PUT", api+"/v1/models/bearing/versions/1", bytes.NewReader(forecaster(t)))
	req.Header.Set("Authorization", "Bearer secure")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %s %s", resp.Status, body)
	}
	var keys []string
	for _, m := range readAll(t, reader, models, 1, 1, 10*time.Second) {
		keys = append(keys, string(m.Key))
	}
	if !strings.Contains(strings.Join(keys, " "), "bearing/1") {
		t.Fatalf("the upload is not in the models topic: keys %v", keys)
	}

	stacktest.Eventually(t, 30*time.Second, func() bool {
		return strings.Contains(strings.ToLower(bad.Log()), "sasl authentication")
	}, "the scorer with a wrong password does not log the failed SASL authentication:\n%s",
		func() any { return bad.Log() })
	// Readiness says why, naming the refused authentication (kafka-go's
	// admin request alone would say "Broker Not Available").
	var ready string
	stacktest.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get(badAPI + "/v2/health/ready")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatalf("the scorer with a wrong password is ready: %s", b)
		}
		ready = string(b)
		return strings.Contains(ready, "model registry not read yet: ") && strings.Contains(strings.ToLower(ready), "sasl authentication")
	}, "the refused scorer's readiness does not name the failed SASL authentication: %s", func() any { return ready })
	t.Logf("readiness of the refused scorer: %s", ready)
	if bad.Exited() || good.Exited() {
		t.Fatalf("a scorer exited:\n%s\n%s", bad.Log(), good.Log())
	}
	// The wrong password holds the right one, so this checks both.
	for name, log := range map[string]string{"wrong": bad.Log(), "scorer": good.Log()} {
		if strings.Contains(log, cluster.Password("scorer")) {
			t.Fatalf("the %s scorer's log holds the password:\n%s", name, log)
		}
	}
}
