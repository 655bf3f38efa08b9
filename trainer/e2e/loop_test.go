// Package e2e runs the closed loop of the system as separate processes on
// the real local stack, time-compressed: simulated pumps → Mosquitto →
// ingest bridge → Kafka → historian → InfluxDB → trainer → the scorer's
// registry → the scorer, whose drift and cold-start requests reach the
// trainer over Kafka. Every step is asserted from the outputs (registry
// records, scores' versions, alert events), not from logs.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

const token = "e2e-token"

func get(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		_ = json.Unmarshal(b, out)
	}
	return resp.StatusCode
}

// agentToken is the edge agent's control API token (PDM_AGENT_TOKEN).
const agentToken = "e2e-agent"

// post calls the edge agent's control API.
func post(t *testing.T, url string) {
	t.Helper()
	req, err := http.NewRequest("POST", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+agentToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

type model struct {
	Active   string `json:"active"`
	Versions []struct {
		Version string `json:"version"`
		Parent  string `json:"parent_version"`
	} `json:"versions"`
}

// follow collects the records of a topic from its start until the test
// ends.
type follow struct {
	mu   sync.Mutex
	msgs []kafka.Message
}

func followTopic(t *testing.T, topic string) *follow {
	f := &follow{}
	kc := stacktest.KafkaConn(t)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.Dialer(0), GroupID: stacktest.Unique("loop-follow"), Topic: topic,
		StartOffset: kafka.FirstOffset, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			f.mu.Lock()
			f.msgs = append(f.msgs, m)
			f.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; r.Close() })
	return f
}

func (f *follow) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.msgs)
}

// scored sums the scorer's per-version scored counters.
func scored(addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "pdm_scorer_readings_scored_total{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			n += int(v)
		}
	}
	return n
}

func (f *follow) values() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, m := range f.msgs {
		fmt.Fprintf(&b, "\n  %s", m.Value)
	}
	return b.String()
}

// drifts counts the drift requests for asset.
func (f *follow) drifts(asset string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, m := range f.msgs {
		var r wire.TrainingRequest
		if json.Unmarshal(m.Value, &r) == nil && r.Asset == asset && r.Reason == wire.ReasonDrift {
			n++
		}
	}
	return n
}

// medianScore is the median score of asset by version, over the scores
// stamped after since.
func (f *follow) medianScore(asset, version string, since time.Time) (float64, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var xs []float64
	for _, m := range f.msgs {
		var s struct {
			Asset, Version string
			Score          float64
			WarmingUp      bool      `json:"warming_up"`
			Time           time.Time `json:"ts"`
		}
		if json.Unmarshal(m.Value, &s) == nil && s.Asset == asset && s.Version == version && !s.WarmingUp && s.Time.After(since) {
			xs = append(xs, s.Score)
		}
	}
	if len(xs) == 0 {
		return math.NaN(), 0
	}
	slices.Sort(xs)
	return xs[len(xs)/2], len(xs)
}

func (f *follow) alerts(asset string) []alert.Alert {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []alert.Alert
	for _, m := range f.msgs {
		var a alert.Alert
		if json.Unmarshal(m.Value, &a) == nil && a.ID != "" && a.Asset == asset {
			out = append(out, a)
		}
	}
	return out
}

// TestClosedLoop: healthy pumps' history reaches InfluxDB, the trainer
// trains version 1 of each (cold start) and the scorer uses it; one pump's
// set point changes (a new operating point, not a fault): its scores
// shift, the scorer asks for a model (drift), the trainer validates and
// promotes version 2, the scorer swaps it in and the pump's scores are low
// again with no alert; meanwhile the other pump's bearing wears and its
// alert opens before the simulated failure.
func TestClosedLoop(t *testing.T) {
	brokers := strings.Join(stacktest.KafkaBrokers(t), ",") // skips under -short before the build
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/edge-agent/cmd/edge-agent", "github.com/pdmstream/pdm/ingest/cmd/ingest",
		"github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	agentBin, ingestBin, scorerBin, trainerBin := bins[0], bins[1], bins[2], bins[3]
	mqttURL, influxURL := stacktest.MQTTURL(t), stacktest.InfluxURL(t)
	bucket := stacktest.InfluxBucket(t)
	site := stacktest.Unique("loop")
	readings := stacktest.Topic(t, "loop-readings", 3)
	dlq := stacktest.Topic(t, "loop-dlq", 1)
	scores := stacktest.Topic(t, "loop-scores", 3)
	alerts := stacktest.Topic(t, "loop-alerts", 1)
	models := stacktest.Topic(t, "loop-models", 1, "cleanup.policy=compact")
	retrain := stacktest.Topic(t, "loop-retrain", 3)
	bridgeID := stacktest.Unique("loop-bridge")
	t.Cleanup(func() { stacktest.ForgetSession(t, bridgeID) })
	alertLog := followTopic(t, alerts)
	requests := followTopic(t, retrain)
	scoreLog := followTopic(t, scores)

	// Readings are stamped with wall time, 100 ms apart: the decision's
	// horizon in time is the 300 readings' 30 s (one simulated day at
	// this time scale is 48 s).
	const horizon = "30s"
	bridge := stacktest.FreeAddr(t)
	stacktest.Start(t, nil, ingestBin, "bridge", "-http.addr", bridge, "-log.level", "warn", "-kafka.brokers", brokers,
		"-kafka.readings", readings, "-kafka.dead-letters", dlq, "-mqtt.url", mqttURL, "-mqtt.filter", "pdm/v1/"+site+"/+/readings",
		"-mqtt.share-group", site, "-mqtt.client-id", bridgeID)
	historian := stacktest.FreeAddr(t)
	stacktest.Start(t, nil, ingestBin, "historian", "-http.addr", historian, "-log.level", "warn", "-kafka.brokers", brokers,
		"-kafka.readings", readings, "-kafka.dead-letters", dlq, "-kafka.group", stacktest.Unique("loop-historian"),
		"-influx.url", influxURL, "-influx.bucket", bucket)
	scorer := stacktest.FreeAddr(t)
	stacktest.Start(t, []string{"PDM_API_TOKEN=" + token, scorerTrust()}, scorerBin, "serve", "-log.level", "warn", "-kafka.brokers", brokers,
		"-kafka.group", stacktest.Unique("loop-scorer"), "-kafka.readings", readings, "-kafka.scores", scores, "-kafka.alerts", alerts,
		"-kafka.models", models, "-kafka.retrain", retrain, "-mqtt.url", "", "-influx.url", influxURL, "-influx.bucket", bucket,
		"-http.addr", scorer, "-scoring.cold-start", "300", "-alert.new-normal.duration", horizon)
	for _, a := range []string{bridge, historian} {
		stacktest.WaitReady(t, "http://"+a+"/readyz")
	}
	stacktest.WaitReady(t, "http://"+scorer+"/v2/health/ready")
	trainer := stacktest.FreeAddr(t)
	data := t.TempDir()
	stacktest.Start(t, []string{"PDM_API_TOKEN=" + token, trainerKey(t)}, trainerBin, "serve", "-log.level", "info", "-kafka.brokers", brokers,
		"-kafka.retrain", retrain, "-kafka.group", stacktest.Unique("loop-trainer"), "-influx.url", influxURL, "-influx.bucket", bucket,
		"-scorer.url", "http://"+scorer, "-http.addr", trainer, "-data-dir", data,
		"-alert.new-normal.duration", horizon, "-job.site", site, "-job.step", "100ms", "-job.history", "1h", "-job.min-rows", "500", "-job.epochs", "40")
	stacktest.WaitReady(t, "http://"+trainer+"/readyz")

	// Two pumps, ten readings a second, three simulated minutes each.
	agent := stacktest.FreeAddr(t)
	stacktest.Start(t, []string{"PDM_AGENT_TOKEN=" + agentToken}, agentBin, "-site", site, "-agent-id", stacktest.Unique("gw"), "-assets", "steady=pump,worn=pump",
		"-rate", "10", "-time-scale", "1800", "-mqtt.url", mqttURL, "-spool.dir", t.TempDir(), "-http.addr", agent, "-log.level", "warn")
	stacktest.WaitReady(t, "http://"+agent+"/healthz")

	// Cold start: after its warm-up and 300 more readings each pump asks
	// for a model; the trainer trains, validates and activates version 1.
	v1 := map[string]string{}
	stacktest.Eventually(t, 4*time.Minute, func() bool {
		for _, a := range []string{"steady", "worn"} {
			var m model
			if get(t, "http://"+scorer+"/v1/models/"+a, &m) == 200 && m.Active != "" {
				v1[a] = m.Active
			}
		}
		return len(v1) == 2
	}, "no first version for both pumps")
	if len(v1) < 2 {
		t.Fatalf("first versions %v; %d training requests; %d readings scored; jobs %s", v1, requests.len(), scored(scorer), jobs(t, trainer))
	}
	t.Logf("version 1: %v", v1)
	// Its lineage is in the artifact.
	var art struct {
		Training struct {
			Assets   []string `json:"assets"`
			DataHash string   `json:"data_hash"`
			Job      string   `json:"job"`
			Rows     int      `json:"rows"`
		} `json:"training"`
		Metrics map[string]float64 `json:"metrics"`
	}
	get(t, fmt.Sprintf("http://%s/v1/models/steady/versions/%s/artifact", scorer, v1["steady"]), &art)
	if art.Training.DataHash == "" || art.Training.Job == "" || art.Training.Rows < 400 || len(art.Training.Assets) != 1 {
		t.Fatalf("version 1 lineage %+v", art.Training)
	}
	if _, ok := art.Metrics["candidate_false_alarms"]; !ok {
		t.Fatalf("version 1 metrics %v", art.Metrics)
	}
	// The scorer scores with it.
	waitScoredBy(t, scores, "steady", "steady", v1["steady"])
	// The drift baseline is the first horizon of quiet readings a new
	// model scores: a change inside it is that model's normal, so the set
	// point moves after it.
	h, _ := time.ParseDuration(horizon)
	time.Sleep(h + 5*time.Second)

	// The set point moves (not a fault); the other pump's bearing wears.
	post(t, "http://"+agent+"/v1/assets/steady/setpoint?load=0.97")
	changed := time.Now()
	post(t, "http://"+agent+"/v1/assets/worn/degrade?mode=bearing_wear&ttf=60h")
	failAt := failureOf(t, agent, "worn")

	// The scorer sees the shift, asks for a model, and the trainer promotes
	// version 2 with version 1 as its parent.
	var v2 string
	stacktest.Eventually(t, 4*time.Minute, func() bool {
		var m model
		if get(t, "http://"+scorer+"/v1/models/steady", &m) == 200 && m.Active != v1["steady"] && m.Active != "" {
			v2 = m.Active
			for _, v := range m.Versions {
				if v.Version == v2 && v.Parent != v1["steady"] {
					t.Fatalf("version 2 %s has parent %q, want %s", v2, v.Parent, v1["steady"])
				}
			}
			return true
		}
		return false
	}, "no second version for the pump whose set point moved; %d drift requests for it, alerts %+v; jobs %s",
		func() any { return requests.drifts("steady") }, func() any { return alertLog.alerts("steady") }, func() any { return jobs(t, trainer) })
	swapped := time.Now()
	t.Logf("version 2 %s active %s after the set-point change; jobs %s", v2, swapped.Sub(changed).Round(time.Second), jobs(t, trainer))
	if requests.drifts("steady") == 0 {
		t.Errorf("version 2 came without a drift request for the pump (%d requests: %s)", requests.len(), requests.values())
	}
	// Any alert the change raised was resolved as the new normal.
	for _, a := range alertLog.alerts("steady") {
		if a.State == alert.Resolved && a.Resolution != alert.NewNormal {
			t.Errorf("the set-point change's alert resolved as %q: %+v", a.Resolution, a)
		}
	}
	waitScoredBy(t, scores, "steady", "steady", v2)

	// The worn pump alerts before its failure.
	stacktest.Eventually(t, time.Until(failAt)+30*time.Second, func() bool {
		for _, a := range alertLog.alerts("worn") {
			if a.State == alert.Opened && a.LastTime.After(changed) {
				return true
			}
		}
		return false
	}, "no alert for the worn pump")
	var opened alert.Alert
	for _, a := range alertLog.alerts("worn") {
		if a.State == alert.Opened && a.LastTime.After(changed) {
			opened = a
			break
		}
	}
	if !opened.LastTime.Before(failAt) {
		t.Errorf("the worn pump's alert came at %s, after its simulated failure at %s", opened.LastTime, failAt)
	}
	t.Logf("worn pump: alert %s (model %s %s) %s before the simulated failure", opened.ID, opened.Model, opened.Version, failAt.Sub(opened.LastTime).Round(time.Second))

	// With version 2 the steady pump is quiet: no alert, and its scores at
	// the new set point are lower than version 1's were.
	time.Sleep(20 * time.Second)
	for _, a := range alertLog.alerts("steady") {
		if a.State == alert.Opened && a.LastTime.After(swapped) {
			t.Errorf("the pump at its new set point alerted after version 2: %+v", a)
		}
	}
	before, n1 := scoreLog.medianScore("steady", v1["steady"], changed.Add(10*time.Second))
	after, n2 := scoreLog.medianScore("steady", v2, swapped)
	t.Logf("steady pump at its new set point: median score %.3f by version 1 (%d scores), %.3f by version 2 (%d)", before, n1, after, n2)
	if !(after < before) || n1 < 50 || n2 < 50 {
		t.Errorf("median score at the new set point: %.3f by version 1 (%d scores), %.3f by version 2 (%d)", before, n1, after, n2)
	}
	// The jobs' records and plots are served by the trainer.
	var list struct {
		Jobs []struct {
			ID    string   `json:"id"`
			State string   `json:"state"`
			Plots []string `json:"plots"`
		} `json:"jobs"`
	}
	get(t, "http://"+trainer+"/v1/jobs", &list)
	promoted := 0
	for _, j := range list.Jobs {
		if j.State == "promoted" {
			promoted++
			for _, p := range j.Plots {
				if code := get(t, "http://"+trainer+"/v1/jobs/"+j.ID+"/"+p, nil); code != 200 {
					t.Errorf("plot %s of %s: %d", p, j.ID, code)
				}
			}
		}
	}
	if promoted < 3 {
		t.Errorf("%d promoted jobs, want at least 3: %s", promoted, jobs(t, trainer))
	}
	if _, err := os.Stat(filepath.Join(data, "jobs")); err != nil {
		t.Error(err)
	}
}

func jobs(t *testing.T, trainer string) string {
	type version struct {
		Metrics json.RawMessage `json:"metrics"`
	}
	var list struct {
		Jobs []struct {
			ID, State, Reason string
			Data              json.RawMessage `json:"data"`
			Cand              *version        `json:"candidate"`
			Active            *version        `json:"active"`
		} `json:"jobs"`
	}
	var b strings.Builder
	if code := get(t, "http://"+trainer+"/v1/jobs", &list); code != http.StatusOK {
		fmt.Fprintf(&b, "(GET /v1/jobs: status %d)", code)
	}
	for _, j := range list.Jobs {
		fmt.Fprintf(&b, "\n  %s %s: %s\n    data %s", j.ID, j.State, j.Reason, j.Data)
		if j.Cand != nil {
			fmt.Fprintf(&b, "\n    candidate %s", j.Cand.Metrics)
		}
		if j.Active != nil {
			fmt.Fprintf(&b, "\n    active %s", j.Active.Metrics)
		}
	}
	return b.String()
}

// waitScoredBy waits for a score of asset by model and version.
func waitScoredBy(t *testing.T, topic, asset, model, version string) {
	t.Helper()
	kc := stacktest.KafkaConn(t)
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers, Dialer: kc.Dialer(0), GroupID: stacktest.Unique("loop-watch"), Topic: topic,
		StartOffset: kafka.LastOffset, MinBytes: 1, MaxBytes: 10 << 20, MaxWait: 200 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("no score of %s by %s %s: %v", asset, model, version, err)
		}
		var s struct {
			Asset, Model, Version string
		}
		if json.Unmarshal(m.Value, &s) == nil && s.Asset == asset && s.Model == model && s.Version == version {
			return
		}
	}
}

// failureOf is the simulator's estimated wall time of asset's failure.
func failureOf(t *testing.T, agent, asset string) time.Time {
	t.Helper()
	var states []struct {
		Asset  string `json:"asset"`
		Active []struct {
			Failure time.Time `json:"failure_estimate"`
		} `json:"active"`
	}
	get(t, "http://"+agent+"/v1/assets", &states)
	for _, s := range states {
		if s.Asset == asset && len(s.Active) > 0 {
			return s.Active[0].Failure
		}
	}
	t.Fatalf("no fault on %s", asset)
	return time.Time{}
}
