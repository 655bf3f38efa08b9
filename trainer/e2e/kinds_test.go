package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// pumpCSV is n healthy readings a second apart of a pump whose flow and
// vibration follow its load.
func pumpCSV(n int) string {
	var b strings.Builder
	b.WriteString("time,flow,load,vibration\n")
	for i := range n {
		load := 60 + 10*math.Sin(2*math.Pi*float64(i)/600) + 0.3*math.Sin(float64(i)*1.7)
		fmt.Fprintf(&b, "%d,%.3f,%.3f,%.4f\n", 1_700_000_000+i, 2*load+0.5*math.Sin(float64(i)*2.3), load, 1+0.01*load+0.01*math.Sin(float64(i)*3.1))
	}
	return b.String()
}

// fleetCSV is runs to failure of a fleet, one unit per block, the last row
// of each its failure: a wear sensor rises as the end nears.
func fleetCSV(units int) string {
	var b strings.Builder
	b.WriteString("unit,wear,load\n")
	for u := range units {
		life := 150 + 17*u
		for i := range life {
			wear := math.Exp(-float64(life-1-i)/40) + 0.01*math.Sin(float64(i*(u+3)))
			fmt.Fprintf(&b, "u%02d,%.4f,%.3f\n", u, wear, 60+5*math.Sin(float64(i)/9))
		}
	}
	return b.String()
}

// TestEveryKindThroughTheScorer: an artifact of each kind the trainer
// trains — reconstruction, forecaster, remaining useful life — is
// published by `trainer run` to a running scorer, which accepts, activates
// and scores it over its inference API.
func TestEveryKindThroughTheScorer(t *testing.T) {
	brokers := stacktest.KafkaBrokers(t) // skips under -short before the build
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/trainer/cmd/trainer")
	scorerBin, trainerBin := bins[0], bins[1]
	scorer := startScorer(t, scorerBin, "kinds", brokers, "", "")
	dir := t.TempDir()
	for _, tc := range []struct {
		kind, asset, data string
		args              []string
		inputs            []string
	}{
		{"reconstruction", "pump-r", pumpCSV(2000), nil, []string{"flow", "load", "vibration"}},
		{"forecaster", "pump-f", pumpCSV(2000), nil, []string{"flow", "load", "vibration"}},
		{"rul", "fleet", fleetCSV(10), []string{"--asset-col", "unit", "-job.window", "10"}, []string{"wear", "load"}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			file := filepath.Join(dir, tc.asset+".csv")
			if err := os.WriteFile(file, []byte(tc.data), 0o644); err != nil {
				t.Fatal(err)
			}
			args := append([]string{"run", "--asset", tc.asset, "--file", file, "-log.level", "warn", "-data-dir", dir,
				"-scorer.url", "http://" + scorer, "-job.kind", tc.kind, "-job.step", "1s", "-job.min-rows", "500",
				"-job.epochs", "20", "-job.promote.min-detection", "0"}, tc.args...)
			cmd := exec.Command(trainerBin, args...)
			cmd.Env = append(os.Environ(), "PDM_API_TOKEN="+token, trainerKey(t))
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("trainer run: %v\n%s", err, stderr.String())
			}
			var rec struct {
				State string
				Cand  struct{ Version string } `json:"candidate"`
			}
			if err := json.Unmarshal(out, &rec); err != nil || rec.State != "promoted" {
				t.Fatalf("record %s (%v)\n%s", out, err, stderr.String())
			}
			var m model
			if code := get(t, "http://"+scorer+"/v1/models/"+tc.asset, &m); code != 200 || m.Active == "" {
				t.Fatalf("registry: %d %+v", code, m)
			}
			// Score readings over the inference API: every input, 30 rows.
			var in []string
			for k, name := range tc.inputs {
				data := make([]string, 30)
				for i := range data {
					data[i] = fmt.Sprint(float64(k+1) + 0.01*float64(i))
				}
				in = append(in, fmt.Sprintf(`{"name":%q,"shape":[30],"datatype":"FP64","data":[%s]}`, name, strings.Join(data, ",")))
			}
			body := `{"id":"k","inputs":[` + strings.Join(in, ",") + `]}`
			resp, err := http.Post("http://"+scorer+"/v2/models/"+tc.asset+"/infer", "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var res struct {
				Version string `json:"model_version"`
				Outputs []struct {
					Name string `json:"name"`
					Data []any  `json:"data"`
				} `json:"outputs"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != 200 || res.Version != m.Active {
				t.Fatalf("infer: %s %v %+v (active %s)", resp.Status, err, res, m.Active)
			}
			scored := 0
			for _, o := range res.Outputs {
				if o.Name == "score" {
					for _, v := range o.Data {
						if s, ok := v.(float64); ok && s > 0 && s < 1 {
							scored++
						}
					}
				}
			}
			if scored == 0 {
				t.Fatalf("no score in (0, 1) from version %s: %+v", m.Active, res.Outputs)
			}
			t.Logf("%s: version %s active, %d of 30 rows scored", tc.kind, m.Active, scored)
		})
	}
}
