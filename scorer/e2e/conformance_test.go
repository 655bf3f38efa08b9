package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/monitor"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/scorer/internal/config"
)

// tritonClientVersion is the reference Open Inference Protocol client the
// conformance test installs from PyPI.
const tritonClientVersion = "2.73.0"

// tritonPython returns the Python of a virtual environment with
// tritonclient[http], installed once into .venv-conformance/ at the top of
// the repository (git-ignored) and reused after that.
func tritonPython(t *testing.T) string {
	t.Helper()
	venv := filepath.Join(stacktest.RepoRoot(t), ".venv-conformance")
	py := filepath.Join(venv, "bin", "python")
	check := "import sys, importlib.metadata as m, tritonclient.http; sys.exit(m.version('tritonclient') != '" + tritonClientVersion + "')"
	if exec.Command(py, "-c", check).Run() == nil {
		return py
	}
	t.Logf("installing tritonclient[http]==%s into %s (once)", tritonClientVersion, venv)
	for _, args := range [][]string{
		{"python3", "-m", "venv", venv},
		{filepath.Join(venv, "bin", "pip"), "install", "--disable-pip-version-check", "--quiet", "tritonclient[http]==" + tritonClientVersion},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command(py, "-c", check).CombinedOutput(); err != nil {
		t.Fatalf("tritonclient not importable after install: %v\n%s", err, out)
	}
	return py
}

// startScorer runs a scorer binary on the local stack's Kafka with its own
// topics (readings from the given one), no MQTT and no InfluxDB, trusting
// trustedKeys (models.trusted_keys), and returns its address once ready.
func startScorer(t *testing.T, bin, token, readings, trustedKeys string) string {
	t.Helper()
	addr, _ := startScorerEnv(t, bin, readings, "PDM_API_TOKEN="+token, "PDM_MODELS_TRUSTED_KEYS="+trustedKeys)
	return addr
}

// startScorerEnv is startScorer with the environment settings env; it also
// returns the process.
func startScorerEnv(t *testing.T, bin, readings string, env ...string) (string, *stacktest.Proc) {
	t.Helper()
	brokers := strings.Join(stacktest.KafkaBrokers(t), ",")
	addr := stacktest.FreeAddr(t)
	p := stacktest.Start(t, env, bin, "serve", "-log.level", "warn",
		"-kafka.brokers", brokers, "-kafka.group", stacktest.Unique("oip"),
		"-kafka.readings", readings, "-kafka.scores", stacktest.Topic(t, "oip-scores", 1),
		"-kafka.alerts", stacktest.Topic(t, "oip-alerts", 1), "-kafka.models", stacktest.Topic(t, "oip-models", 1),
		"-kafka.retrain", stacktest.Topic(t, "oip-retrain", 1),
		"-mqtt.url", "", "-influx.url", "", "-http.addr", addr)
	stacktest.WaitReady(t, "http://"+addr+"/v2/health/ready")
	return addr, p
}

// testPublicKey is modeltest's public key as models.trusted_keys takes it.
func testPublicKey() string { return base64.StdEncoding.EncodeToString(modeltest.Public) }

// trustTestKey is the environment setting that makes a scorer trust
// artifacts signed by modeltest's key.
func trustTestKey() string { return "PDM_MODELS_TRUSTED_KEYS=" + testPublicKey() }

// call sends one request with the token and returns the status and body.
func call(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

// A real scorer, driven by the reference client tritonclient[http] and by
// the protocol's JSON examples: health, metadata, configuration,
// repository index, inference of a 64-reading window of a pump's sensors
// in JSON and binary, [n] and [1, n], FP64 and FP32, with the scores the
// library computes for the same window, and errors as JSON objects.
func TestOpenInferenceProtocolConformance(t *testing.T) {
	stacktest.KafkaBrokers(t) // skips under -short before the build and the install
	py := tritonPython(t)
	bin := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer")[0]
	const token = "oip"
	addr := startScorer(t, bin, token, stacktest.Topic(t, "oip-readings", 1), testPublicKey())

	features := []string{"vibration_rms", "bearing_temp", "motor_current", "discharge_pressure", "flow", "speed"}
	pump := func(i int) []float64 {
		x := float64(i)
		return []float64{2.5 + 0.1*math.Sin(x/4), 61 + math.Sin(x/9), 40 + 2*math.Cos(x/7), 5.2 + 0.1*math.Sin(x/5), 118 + 3*math.Cos(x/6), 1480 + 5*math.Sin(x/8)}
	}
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	var rows [][]float64
	var times []time.Time
	for i := range 400 {
		rows = append(rows, pump(i))
		times = append(times, t0.Add(time.Duration(i)*time.Second))
	}
	art, err := anomaly.TrainForecaster(rows, times, features, anomaly.ForecasterConfig{Name: "pump", Version: "1", Window: 8, Horizon: 2, Epochs: 10})
	if err != nil {
		t.Fatal(err)
	}
	if err := art.Sign(modeltest.Private); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := art.Write(&buf); err != nil {
		t.Fatal(err)
	}
	base := "http://" + addr
	if code, b := call(t, "PUT", base+"/v1/models/pump/versions/1", token, buf.Bytes()); code != 201 {
		t.Fatalf("upload: %d %s", code, b)
	}
	if code, b := call(t, "POST", base+"/v1/models/pump/activate", token, []byte(`{"version":"1","assets":["pump-1"]}`)); code != 200 {
		t.Fatalf("activate: %d %s", code, b)
	}

	// The window, with a fault in its second half, and the library's
	// scores for it as FP64 and as FP32-rounded readings.
	const n = 64
	window := map[string][]float64{}
	var ts []int64
	for i := range n {
		r := pump(500 + i)
		if i >= 40 {
			r[0] += 0.2 * float64(i-39)
			r[1] += 0.5 * float64(i-39)
		}
		for j, f := range features {
			window[f] = append(window[f], r[j])
		}
		ts = append(ts, t0.Add(time.Duration(500+i)*time.Second).UnixMilli())
	}
	scores := func(round func(float64) float64) []float64 {
		det, err := anomaly.FromArtifact(art)
		if err != nil {
			t.Fatal(err)
		}
		mon, err := monitor.New(det, config.Default().Alert.Config())
		if err != nil {
			t.Fatal(err)
		}
		out := make([]float64, n)
		for i := range n {
			s := map[string]float64{}
			for _, f := range features {
				s[f] = round(window[f][i])
			}
			res, err := mon.Observe(&wire.Reading{Asset: "infer", Seq: uint64(i + 1), Time: time.UnixMilli(ts[i]).UTC(), Sensors: s})
			if err != nil {
				t.Fatal(err)
			}
			out[i] = res.Score
		}
		return out
	}
	fp64 := scores(func(x float64) float64 { return x })
	fp32 := scores(func(x float64) float64 { return float64(float32(x)) })
	if fp64[n-1] < fp64[0]+0.1 {
		t.Fatalf("the window's fault does not raise the score (%v → %v): the test would not tell scores apart", fp64[0], fp64[n-1])
	}
	caseFile := filepath.Join(t.TempDir(), "case.json")
	b, _ := json.Marshal(map[string]any{"url": addr, "token": token, "model": "pump", "version": "1", "features": features,
		"window": window, "timestamps": ts, "scores_fp64": fp64, "scores_fp32": fp32})
	if err := os.WriteFile(caseFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, filepath.Join("testdata", "oip_conformance.py"), caseFile).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("conformance: %v", err)
	}
	if got := strings.Count(string(out), "\nok ") + 1; got < 100 {
		t.Fatalf("only %d checks ran", got)
	}
}
