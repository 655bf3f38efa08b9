package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// TestHostileRequests sends a real scorer the requests a careless or
// hostile client would, each with its defined answer: a 4xx that says what
// is wrong, one count in pdm_scorer_http_requests_total under its route and
// code, and nothing else disturbed — the good model still answers the same
// request with the same scores, no version was added, and the process
// logged no panic.
func TestHostileRequests(t *testing.T) {
	stacktest.KafkaBrokers(t) // skips under -short before the build
	_, _, bin := binaries(t)
	const tok = "write-hostile-3c1d"
	api, proc := startScorerEnv(t, bin, stacktest.Topic(t, "hostile-readings", 1), "PDM_API_TOKEN="+tok, trustTestKey())
	base := "http://" + api
	good := forecaster(t)
	if code, body := call(t, "PUT", base+"/v1/models/bearing/versions/1", tok, good); code != 201 {
		t.Fatalf("upload of the good artifact: %d %s", code, body)
	}
	const inferPath = "/v2/models/bearing/versions/1/infer"
	small := inferBody(8)
	_, before := call(t, "POST", base+inferPath, tok, small)

	// A weight written as NaN (JSON has no such number) and as a number
	// past float64: the artifact is refused, not half loaded.
	weights := regexp.MustCompile(`"weights":\s*\[`).FindIndex(good)
	if weights == nil {
		t.Fatalf("no weights in the artifact:\n%.500s", good)
	}
	withWeight := func(w string) []byte {
		return slices.Concat(good[:weights[1]], []byte(w+","), good[weights[1]:])
	}
	nan, huge := withWeight("NaN"), withWeight("1e999")
	twice := bytes.Replace(small, []byte(`{"inputs":`), []byte(`{"inputs":[],"inputs":`), 1)
	dupSensor := bytes.Replace(small, []byte(`"name":"vibration"`), []byte(`"name":"vibration","name":"bearing_temp"`), 1)
	steps := []struct {
		what, method, path string
		body               []byte
		code               int
		msg                string
	}{
		{"an artifact whose weight is NaN", "PUT", "/v1/models/bearing/versions/2", nan, 422, "decode"},
		{"an artifact whose weight overflows", "PUT", "/v1/models/bearing/versions/3", huge, 422, "decode"},
		{"an artifact cut short", "PUT", "/v1/models/bearing/versions/4", good[:len(good)/2], 422, "truncated or corrupted"},
		{"an artifact past the size limit", "PUT", "/v1/models/bearing/versions/5", bytes.Repeat([]byte(" "), 65<<20), 413, "artifact larger than"},
		{"inference of 100,001 readings", "POST", inferPath, inferBody(100_001), 400, "limit 100000"},
		{"inference with a key given twice", "POST", inferPath, twice, 400, `key "inputs" given twice`},
		{"inference with a nested key given twice", "POST", inferPath, dupSensor, 400, `key "name" given twice`},
		{"inference that is not JSON", "POST", inferPath, []byte(`{"inputs":[{"name":`), 400, "request body"},
		{"inference past the body limit", "POST", inferPath, bytes.Repeat([]byte(" "), 65<<20), 413, "request body larger than"},
		{"an acknowledgement with a key given twice", "POST", "/v1/alerts/none/ack", []byte(`{"by":"a","by":"b"}`), 400, "given twice"},
	}
	counted := map[string]float64{}
	for _, st := range steps {
		counted[st.method+" "+route(st.path)+" "+strconv.Itoa(st.code)]++
	}
	baseline := requestCounts(t, base)
	for _, st := range steps {
		code, body := call(t, st.method, base+st.path, tok, st.body)
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if code != st.code || !strings.Contains(e.Error, st.msg) {
			t.Errorf("%s: %d %.300s, want %d %q", st.what, code, body, st.code, st.msg)
		}
	}

	// 100,000 readings, the limit, are served.
	code, body := call(t, "POST", base+inferPath, tok, inferBody(100_000))
	var out struct {
		Outputs []struct {
			Name  string
			Shape []int
		}
	}
	if err := json.Unmarshal(body, &out); code != 200 || err != nil || len(out.Outputs) == 0 || out.Outputs[0].Shape[0] != 100_000 {
		t.Errorf("inference of 100,000 readings: %d %.300s", code, body)
	}

	after := requestCounts(t, base)
	for key, n := range counted {
		if got := after[key] - baseline[key]; got != n {
			t.Errorf("pdm_scorer_http_requests_total{%s} rose by %v, want %v", key, got, n)
		}
	}
	if code, again := call(t, "POST", base+inferPath, tok, small); code != 200 || !bytes.Equal(again, before) {
		t.Errorf("the good model's answer changed after the hostile requests: %d\n%s\nwas\n%s", code, again, before)
	}
	var reg struct {
		Models []struct{ Versions []struct{ Version string } }
	}
	if _, list := call(t, "GET", base+"/v1/models", tok, nil); json.Unmarshal(list, &reg) != nil || len(reg.Models) != 1 || len(reg.Models[0].Versions) != 1 {
		t.Errorf("models after the refused uploads: %s, want bearing 1 only", list)
	}
	if log := proc.Log(); strings.Contains(log, "panic") {
		t.Errorf("the scorer panicked:\n%s", log)
	}
}

// inferBody is an inference request of n readings of the forecaster's two
// sensors, in the shape of the Open Inference Protocol.
func inferBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"inputs":[`)
	for i, name := range []string{"bearing_temp", "vibration"} {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"name":%q,"shape":[%d],"datatype":"FP64","data":[`, name, n)
		for j := range n {
			if j > 0 {
				b.WriteByte(',')
			}
			v := 60 + math.Sin(float64(j)/5)
			if name == "vibration" {
				v = 1 + 0.1*math.Cos(float64(j)/3)
			}
			b.WriteString(strconv.FormatFloat(v, 'f', 4, 64))
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// route is the pattern of the scorer's route that serves path, as the
// requests metric names it.
func route(path string) string {
	switch {
	case strings.HasPrefix(path, "/v1/models/"):
		return "/v1/models/{name}/versions/{version}"
	case strings.HasPrefix(path, "/v2/models/"):
		return "/v2/models/{name}/versions/{version}/infer"
	case strings.HasPrefix(path, "/v1/alerts/"):
		return "/v1/alerts/{id}/ack"
	}
	return path
}

// requestCounts reads pdm_scorer_http_requests_total from the scorer's
// /metrics, keyed "<route> <code>" (the route label is "METHOD /path").
func requestCounts(t *testing.T, base string) map[string]float64 {
	t.Helper()
	_, body := call(t, "GET", base+"/metrics", "", nil)
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "pdm_scorer_http_requests_total{")
		if !ok {
			continue
		}
		labels, value, _ := strings.Cut(rest, "} ")
		var code, rt string
		for _, kv := range strings.Split(labels, `",`) {
			k, v, _ := strings.Cut(kv, `="`)
			v = strings.TrimSuffix(v, `"`)
			switch k {
			case "code":
				code = v
			case "route":
				rt = v
			}
		}
		n, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[rt+" "+code] = n
	}
	return out
}
