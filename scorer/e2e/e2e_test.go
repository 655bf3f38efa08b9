// Package e2e runs the whole pipeline as separate processes on the real
// local stack — edge-agent simulator → Mosquitto → ingest bridge → Kafka →
// scorer — and checks what an operator would see: a wearing bearing raises
// an alert before the simulated failure, naming the bearing's sensors; a
// repair resolves it; a healthy twin raises nothing. It also holds the
// scorer's Open Inference Protocol conformance test (the reference client
// tritonclient[http] against a real scorer) and the test that runs every
// command of docs/models-as-a-service.md and scorer/README.md's model
// section.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
)

func binaries(t *testing.T) (agent, ingest, scorer string) {
	t.Helper()
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/edge-agent/cmd/edge-agent",
		"github.com/pdmstream/pdm/ingest/cmd/ingest", "github.com/pdmstream/pdm/scorer/cmd/scorer")
	return bins[0], bins[1], bins[2]
}

// agentToken is the edge agents' control API token (PDM_AGENT_TOKEN)
// in these tests.
const agentToken = "e2e-agent"

// post calls an edge agent's control API.
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

// groundTruth returns the estimated wall time of failure of asset's active
// fault, from the simulator's admin API.
func groundTruth(t *testing.T, admin, asset string) time.Time {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/v1/assets")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var states []struct {
		Asset  string `json:"asset"`
		Active []struct {
			Failure time.Time `json:"failure_estimate"`
		} `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&states); err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Asset == asset && len(s.Active) > 0 {
			return s.Active[0].Failure
		}
	}
	t.Fatalf("no active fault for %s in the simulator's ground truth: %+v", asset, states)
	return time.Time{}
}

// scored sums the scorer's per-version scored counters.
func scored(addr string) int { return int(metricSum(addr, "pdm_scorer_readings_scored_total")) }

// metricSum is the sum of every series of the metric name on the /metrics
// of the service at addr, -1 when it does not answer.
func metricSum(addr, name string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
			sum += v
		}
	}
	return sum
}

func TestBearingWearAlertsBeforeFailure(t *testing.T) {
	brokers := strings.Join(stacktest.KafkaBrokers(t), ",") // skips under -short before the build
	agentBin, ingestBin, scorerBin := binaries(t)
	mqttURL := stacktest.MQTTURL(t)
	site := stacktest.Unique("e2e")
	readings := stacktest.Topic(t, "e2e-readings", 6)
	dlq := stacktest.Topic(t, "e2e-dlq", 1)
	scores := stacktest.Topic(t, "e2e-scores", 6)
	alerts := stacktest.Topic(t, "e2e-alerts", 1)
	models := stacktest.Topic(t, "e2e-models", 1)
	bridgeID := stacktest.Unique("e2e-bridge")
	t.Cleanup(func() { stacktest.ForgetSession(t, bridgeID) })

	bridgeAdmin := stacktest.FreeAddr(t)
	stacktest.Start(t, nil, ingestBin, "bridge", "-http.addr", bridgeAdmin, "-log.level", "warn", "-kafka.brokers", brokers,
		"-kafka.readings", readings, "-kafka.dead-letters", dlq, "-mqtt.url", mqttURL, "-mqtt.filter", "pdm/v1/"+site+"/+/readings",
		"-mqtt.share-group", site, "-mqtt.client-id", bridgeID)
	stacktest.WaitReady(t, "http://"+bridgeAdmin+"/readyz")

	scorerAddr := stacktest.FreeAddr(t)
	stacktest.Start(t, []string{"PDM_API_TOKEN=e2e", trustTestKey()}, scorerBin, "serve", "-log.level", "warn", "-kafka.brokers", brokers,
		"-kafka.group", stacktest.Unique("e2e-scorer"), "-kafka.readings", readings, "-kafka.scores", scores,
		"-kafka.alerts", alerts, "-kafka.models", models, "-mqtt.url", mqttURL, "-influx.url", "", "-http.addr", scorerAddr,
		"-alert.min-duration", "3s")
	stacktest.WaitReady(t, "http://"+scorerAddr+"/v2/health/ready")

	// The floor's view: retained alert state of both machines.
	var mu sync.Mutex
	var floor []alert.Alert
	c := mqtt.NewClient(stacktest.MQTTOptions(t).SetClientID(stacktest.Unique("e2e-floor")))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	c.Subscribe(wire.AlertsTopic(site, "+"), 1, func(_ mqtt.Client, m mqtt.Message) {
		var a alert.Alert
		if json.Unmarshal(m.Payload(), &a) == nil {
			mu.Lock()
			floor = append(floor, a)
			mu.Unlock()
		}
	}).WaitTimeout(10 * time.Second)
	events := func() []alert.Alert {
		mu.Lock()
		defer mu.Unlock()
		return append([]alert.Alert(nil), floor...)
	}

	// Two identical pumps, one simulated hour per real second; each reading
	// is 3 simulated minutes. Readings carry the wall clock, so the alert
	// thresholds' minimum duration is real time.
	agentAdmin := stacktest.FreeAddr(t)
	stacktest.Start(t, []string{"PDM_AGENT_TOKEN=" + agentToken}, agentBin, "-site", site, "-agent-id", stacktest.Unique("gw"), "-assets", "worn=pump,healthy=pump",
		"-rate", "20", "-time-scale", "3600", "-mqtt.url", mqttURL, "-spool.dir", t.TempDir(), "-http.addr", agentAdmin, "-log.level", "warn")
	stacktest.WaitReady(t, "http://"+agentAdmin+"/healthz")

	// Let the online learner learn normal (400 readings each), then wear
	// the bearing: failure 48 simulated hours later, ~48 s of real time.
	stacktest.Eventually(t, 2*time.Minute, func() bool { return scored(scorerAddr) >= 2*600 }, "scorer has %d scores", scored(scorerAddr))
	post(t, "http://"+agentAdmin+"/v1/assets/worn/degrade?mode=bearing_wear&ttf=48h")
	failAt := groundTruth(t, agentAdmin, "worn")
	t.Logf("bearing wear started; simulated failure expected at %s (in %s)", failAt.Format(time.RFC3339), time.Until(failAt).Round(time.Second))

	var opened alert.Alert
	stacktest.Eventually(t, 3*time.Minute, func() bool {
		for _, a := range events() {
			if a.Asset == "worn" && a.State != alert.Resolved {
				opened = a
				return true
			}
		}
		return false
	}, "no alert for the worn pump")
	seen := time.Now()
	lead := failAt.Sub(seen)
	t.Logf("alert %s %s at %s: lead time %s before the simulated failure (%s simulated, of 48h); top sensors %v; forecast %+v; model %s %s",
		opened.ID, opened.Severity, seen.Format(time.RFC3339), lead.Round(time.Second), (lead * 3600).Round(time.Minute), opened.TopSensors, opened.Forecast, opened.Model, opened.Version)
	if lead <= 0 {
		t.Errorf("the alert came %s after the simulated failure", -lead)
	}
	top := map[string]bool{}
	for _, s := range opened.TopSensors {
		top[s.Name] = true
	}
	if !top["bearing_temp"] && !top["vibration_rms"] {
		t.Errorf("top sensors %v name neither bearing_temp nor vibration_rms", opened.TopSensors)
	}

	post(t, "http://"+agentAdmin+"/v1/assets/worn/repair")
	stacktest.Eventually(t, 3*time.Minute, func() bool {
		ev := events()
		for i := len(ev) - 1; i >= 0; i-- {
			if ev[i].Asset == "worn" {
				return ev[i].State == alert.Resolved && ev[i].ID == opened.ID
			}
		}
		return false
	}, "the alert did not resolve after the repair")
	for _, a := range events() {
		if a.Asset == "healthy" {
			t.Errorf("the healthy pump raised an alert: %+v", a)
		}
	}
}
