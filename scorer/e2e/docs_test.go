package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/segmentio/kafka-go"
)

// docBlock is one fenced sh block of a document and the text block right
// after it: the answer the document promises.
type docBlock struct {
	line   int
	script string
	want   []string
}

// shellBlocks returns the sh blocks of path under the heading section (the
// whole file when section is ""), each with its answer block.
func shellBlocks(t *testing.T, path, section string) []docBlock {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	fence := func(i int) (body []string, next int) {
		for j := i + 1; j < len(lines); j++ {
			if strings.TrimSpace(lines[j]) == "```" {
				return lines[i+1 : j], j + 1
			}
		}
		t.Fatalf("%s:%d: unclosed fence", path, i+1)
		return nil, 0
	}
	var out []docBlock
	in := section == ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "## ") && section != "" {
			in = l == section
			continue
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		body, next := fence(i)
		if !in || l != "```sh" {
			i = next - 1
			continue
		}
		b := docBlock{line: i + 1, script: strings.Join(body, "\n")}
		j := next
		for j < len(lines) && strings.TrimSpace(lines[j]) == "" {
			j++
		}
		if j < len(lines) && lines[j] == "```text" {
			b.want, next = fence(j)
		}
		if b.want == nil {
			t.Fatalf("%s:%d: sh block without the ```text block of its answer right after it", path, b.line)
		}
		out = append(out, b)
		i = next - 1
	}
	if len(out) == 0 {
		t.Fatalf("%s: no sh blocks under %q", path, section)
	}
	return out
}

// answerMatches compares output line by line with the documented answer,
// where "..." in the answer stands for any text.
func answerMatches(want []string, got string) error {
	gl := strings.Split(strings.TrimRight(got, "\n"), "\n")
	for i := 0; i < len(want) || i < len(gl); i++ {
		var w, g string
		if i < len(want) {
			w = want[i]
		}
		if i < len(gl) {
			g = strings.TrimRight(gl[i], " ")
		}
		re := "^" + strings.ReplaceAll(regexp.QuoteMeta(w), regexp.QuoteMeta("..."), ".*") + "$"
		if i >= len(want) || i >= len(gl) || !regexp.MustCompile(re).MatchString(g) {
			return fmt.Errorf("line %d:\n got  %s\n want %s", i+1, g, w)
		}
	}
	return nil
}

// feedSite sends readings of two pumps and a motor of site, with the
// simulator's sensors, to topic every 100 ms until the test ends, and
// waits until the scorer has scored some of each.
func feedSite(t *testing.T, topic, site, scorer string) {
	t.Helper()
	kc := stacktest.KafkaConn(t)
	w := &kafka.Writer{Addr: kafka.TCP(kc.Brokers...), Transport: kc.Transport(), Topic: topic, Balancer: &kafka.Hash{}, BatchTimeout: 5 * time.Millisecond}
	pump := func(i float64) map[string]float64 {
		return map[string]float64{"vibration_rms": 1.3 + 0.02*math.Sin(i/3), "bearing_temp": 31 + math.Sin(i/7), "motor_current": 82 + math.Cos(i/5),
			"discharge_pressure": 5.03 + 0.02*math.Sin(i/4), "flow": 109.6 + math.Cos(i/6), "speed": 2712 + 5*math.Sin(i/8)}
	}
	motor := func(i float64) map[string]float64 {
		return map[string]float64{"vibration_rms": 1.1 + 0.02*math.Sin(i/3), "bearing_temp": 30 + math.Sin(i/7), "winding_temp": 35 + math.Cos(i/9),
			"motor_current": 115 + math.Cos(i/5), "voltage": 396 + math.Sin(i/4), "speed": 1469 + math.Sin(i/8)}
	}
	t0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	send := func(ctx context.Context, seq uint64) error {
		var msgs []kafka.Message
		for _, a := range []struct {
			id      string
			sensors map[string]float64
		}{{"pump-1", pump(float64(seq))}, {"pump-2", pump(float64(seq) + 50)}, {"motor-1", motor(float64(seq))}} {
			b, err := wire.Reading{Site: site, Asset: a.id, Seq: seq, Time: t0.Add(time.Duration(seq) * time.Second), Sensors: a.sensors}.MarshalJSON()
			if err != nil {
				return err
			}
			msgs = append(msgs, kafka.Message{Key: []byte(a.id), Value: b})
		}
		return w.WriteMessages(ctx, msgs...)
	}
	stacktest.Run(t, "readings feed", func(ctx context.Context) error {
		defer w.Close()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for seq := uint64(1); ; seq++ {
			if err := send(ctx, seq); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	})
	stacktest.Eventually(t, time.Minute, func() bool { return scored(scorer) >= 9 }, "scorer at %s scores no readings", scorer)
}

// Every command of docs/models-as-a-service.md and of scorer/README.md's
// model section runs, in order, against a real scorer on the local stack
// fed with readings of a site's two pumps and a motor, and answers what
// the document shows.
func TestDocsCommands(t *testing.T) {
	stacktest.KafkaBrokers(t) // skips under -short before the build and the install
	py := tritonPython(t)
	bins := stacktest.Build(t, "github.com/pdmstream/pdm/scorer/cmd/scorer", "github.com/pdmstream/pdm/edge-agent/cmd/edge-agent")
	root := stacktest.RepoRoot(t)
	path := strings.Join([]string{filepath.Dir(bins[0]), filepath.Dir(py), os.Getenv("PATH")}, string(os.PathListSeparator))
	for _, doc := range []struct{ file, section string }{
		{"docs/models-as-a-service.md", ""},
		{"scorer/README.md", "## Models as a service"},
	} {
		t.Run(doc.file, func(t *testing.T) {
			blocks := shellBlocks(t, filepath.Join(root, doc.file), doc.section)
			const token, site = "docs", "plant1"
			// The scorer trusts a key pair made as the page says, which
			// its commands sign with ($KEYS).
			dir := t.TempDir()
			keys := filepath.Join(dir, "keys")
			if out, err := exec.Command(bins[0], "model", "keygen", "-out", keys).CombinedOutput(); err != nil {
				t.Fatalf("scorer model keygen: %v\n%s", err, out)
			}
			readings := stacktest.Topic(t, "docs-readings", 1)
			addr := startScorer(t, bins[0], token, readings, filepath.Join(keys, "model.pub"))
			feedSite(t, readings, site, addr)
			env := append(os.Environ(), "PATH="+path, "SCORER=http://"+addr, "SITE="+site, "PDM_API_TOKEN="+token, "KEYS="+keys)
			for _, b := range blocks {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", b.script)
				cmd.Dir, cmd.Env = dir, env
				out, err := cmd.CombinedOutput()
				cancel()
				t.Logf("%s:%d:\n%s", doc.file, b.line, out)
				if err != nil {
					t.Fatalf("%s:%d: %v\n%s\n--- output\n%s", doc.file, b.line, err, b.script, out)
				}
				if err := answerMatches(b.want, string(out)); err != nil {
					t.Fatalf("%s:%d: the answer is not the documented one: %v\n--- output\n%s", doc.file, b.line, err, out)
				}
			}
		})
	}
}
