package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

// TestTrainerOnSecuredKafka: `trainer serve` told through the environment
// to reach a secured broker (SASL/SCRAM-SHA-512 over TLS, its password in
// the file PDM_KAFKA_SASL_PASSWORD_FILE names) becomes ready, runs a
// training request written to the secured topic, and queues its API's
// requests there; with a wrong password it is not ready, and its log names
// SASL authentication and not the password.
func TestTrainerOnSecuredKafka(t *testing.T) {
	cluster := stacktest.StartSecureKafka(t, 1) // skips under -short
	trainerBin := stacktest.Build(t, "github.com/pdmstream/pdm/trainer/cmd/trainer")[0]
	influxURL := stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	requests := cluster.Topic("secure-retrain", 1)
	site := stacktest.Unique("secure")
	// A password the environment carries (a secured shared stack's) would
	// win over the file.
	if _, ok := os.LookupEnv("PDM_KAFKA_SASL_PASSWORD"); ok {
		t.Setenv("PDM_KAFKA_SASL_PASSWORD", "")
		os.Unsetenv("PDM_KAFKA_SASL_PASSWORD")
	}
	start := func(t *testing.T, password string) (*stacktest.Proc, string) {
		t.Helper()
		file := filepath.Join(t.TempDir(), "trainer.password")
		if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := stacktest.FreeAddr(t)
		env := []string{"PDM_KAFKA_BROKERS=" + strings.Join(cluster.Brokers(), ","), "PDM_KAFKA_TLS_CA_FILE=" + cluster.CAFile(),
			"PDM_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "PDM_KAFKA_SASL_USERNAME=trainer", "PDM_KAFKA_SASL_PASSWORD_FILE=" + file,
			"PDM_TRAINER_TOKEN=" + token}
		p := stacktest.Start(t, env, trainerBin, "serve", "-log.level", "info", "-kafka.retrain", requests,
			"-kafka.group", stacktest.Unique("secure-trainer"), "-influx.url", influxURL, "-influx.bucket", bucket,
			"-http.addr", addr, "-data-dir", t.TempDir(), "-job.site", site)
		return p, addr
	}

	t.Run("right password", func(t *testing.T) {
		proc, addr := start(t, cluster.Password("trainer"))
		stacktest.WaitReady(t, "http://"+addr+"/readyz")

		// A request as the scorer publishes it: run as a job (the fresh
		// database holds no history, so it ends with no data).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		scorer := cluster.Conn("scorer")
		w := &kafka.Writer{Addr: kafka.TCP(scorer.Brokers...), Transport: scorer.Transport(), Topic: requests, Balancer: &kafka.Hash{}}
		defer w.Close()
		b, _ := json.Marshal(wire.TrainingRequest{Site: site, Asset: "p1", Reason: wire.ReasonDrift, By: "scorer", At: time.Now().UTC()})
		if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("p1"), Value: b}); err != nil {
			t.Fatal(err)
		}
		var list jobList
		states := func() map[string]string {
			m := map[string]string{}
			for _, j := range list.Jobs {
				m[j.ID] = j.State
			}
			return m
		}
		ended := func(class string) bool {
			get(t, "http://"+addr+"/v1/jobs", &list)
			for _, j := range list.Jobs {
				if strings.HasPrefix(j.ID, class+"-") && j.State == "no_data" {
					return true
				}
			}
			return false
		}
		stacktest.Eventually(t, time.Minute, func() bool { return ended("p1") },
			"the request written to the secured topic made no job; jobs %v\n%s", func() any { return states() }, func() any { return proc.Log() })

		// The API's request is written to the secured topic and run.
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/jobs", bytes.NewReader([]byte(`{"asset": "p2", "by": "test"}`)))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/jobs: %s\n%s", resp.Status, proc.Log())
		}
		admin := cluster.Conn("admin")
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: admin.Brokers, Dialer: admin.Dialer(0), Topic: requests, Partition: 0,
			MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond})
		defer r.Close()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				t.Fatalf("the API's request is not in the secured topic: %v", err)
			}
			var got wire.TrainingRequest
			if string(m.Key) == "p2" && json.Unmarshal(m.Value, &got) == nil && got.By == "test" && got.Reason == wire.ReasonManual {
				break
			}
		}
		stacktest.Eventually(t, time.Minute, func() bool { return ended("p2") },
			"the API's request made no job; jobs %v", func() any { return states() })
		if strings.Contains(proc.Log(), cluster.Password("trainer")) {
			t.Error("the log shows the password")
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-trainers-password"
		proc, addr := start(t, wrong)
		stacktest.Eventually(t, 30*time.Second, func() bool {
			return strings.Contains(proc.Log(), "kafka not ready") && strings.Contains(proc.Log(), "SASL Authentication")
		}, "no log line about SASL authentication:\n%s", func() any { return proc.Log() })
		var body string
		code := 0
		stacktest.Eventually(t, 10*time.Second, func() bool {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var buf bytes.Buffer
			_, _ = buf.ReadFrom(resp.Body)
			code, body = resp.StatusCode, buf.String()
			return true
		}, "/readyz does not answer")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "SASL Authentication") {
			t.Errorf("/readyz with a wrong password: %d %q, want 503 naming SASL authentication", code, body)
		}
		for _, secret := range []string{wrong, cluster.Password("trainer")} {
			if strings.Contains(proc.Log(), secret) || strings.Contains(body, secret) {
				t.Errorf("the log or /readyz shows a password:\n%s\n%s", proc.Log(), body)
			}
		}
		if proc.Exited() {
			t.Errorf("the trainer exited with a wrong password; it should wait:\n%s", proc.Log())
		}
		t.Logf("wrong password: %s", strings.TrimSpace(body))
	})
}
