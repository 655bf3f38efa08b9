package api

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// binaryBody builds a request under the binary tensor data extension: the
// JSON header, then each input's values little-endian in its datatype.
func binaryBody(t *testing.T, params map[string]any, outputs []map[string]any, inputs ...binInput) ([]byte, int) {
	t.Helper()
	var bin []byte
	var js []map[string]any
	for _, in := range inputs {
		start := len(bin)
		for _, v := range in.values {
			switch in.datatype {
			case "FP64":
				bin = binary.LittleEndian.AppendUint64(bin, math.Float64bits(v))
			case "FP32":
				bin = binary.LittleEndian.AppendUint32(bin, math.Float32bits(float32(v)))
			case "INT64":
				bin = binary.LittleEndian.AppendUint64(bin, uint64(int64(v)))
			default:
				t.Fatalf("datatype %s", in.datatype)
			}
		}
		js = append(js, map[string]any{"name": in.name, "shape": in.shape, "datatype": in.datatype, "parameters": map[string]any{"binary_data_size": len(bin) - start}})
	}
	req := map[string]any{"inputs": js}
	if params != nil {
		req["parameters"] = params
	}
	if outputs != nil {
		req["outputs"] = outputs
	}
	h, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return append(h, bin...), len(h)
}

type binInput struct {
	name, datatype string
	shape          []int
	values         []float64
}

// post sends body with the header length when hlen ≥ 0 and returns the
// status, the JSON header of the answer and the binary part.
func post(t *testing.T, url string, body []byte, hlen int) (int, map[string]any, []byte, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	if hlen >= 0 {
		req.Header.Set(HeaderContentLength, strconv.Itoa(hlen))
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	js, rest := b, []byte(nil)
	if h := resp.Header.Get(HeaderContentLength); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n > len(b) {
			t.Fatalf("%s %q for a body of %d", HeaderContentLength, h, len(b))
		}
		js, rest = b[:n], b[n:]
	}
	var out map[string]any
	if err := json.Unmarshal(js, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %q", resp.StatusCode, b)
	}
	return resp.StatusCode, out, rest, resp.Header
}

// outputs decodes every output of an answer, JSON or binary, to float64s
// (BOOL as 0/1), with its shape.
func outputs(t *testing.T, body map[string]any, bin []byte) (map[string][]float64, map[string][]int) {
	t.Helper()
	vals, shapes := map[string][]float64{}, map[string][]int{}
	off := 0
	for _, o := range body["outputs"].([]any) {
		m := o.(map[string]any)
		name := m["name"].(string)
		for _, d := range m["shape"].([]any) {
			shapes[name] = append(shapes[name], int(d.(float64)))
		}
		p, _ := m["parameters"].(map[string]any)
		if size, ok := p["binary_data_size"].(float64); ok {
			if _, has := m["data"]; has {
				t.Fatalf("output %s has data and binary_data_size", name)
			}
			raw := bin[off : off+int(size)]
			off += int(size)
			switch m["datatype"] {
			case "FP64":
				for i := 0; i < len(raw); i += 8 {
					vals[name] = append(vals[name], math.Float64frombits(binary.LittleEndian.Uint64(raw[i:])))
				}
			case "BOOL":
				for _, b := range raw {
					vals[name] = append(vals[name], float64(b))
				}
			}
			continue
		}
		for _, x := range m["data"].([]any) {
			switch v := x.(type) {
			case float64:
				vals[name] = append(vals[name], v)
			case bool:
				vals[name] = append(vals[name], map[bool]float64{false: 0, true: 1}[v])
			}
		}
	}
	if off != len(bin) {
		t.Fatalf("binary part %d bytes, outputs used %d", len(bin), off)
	}
	return vals, shapes
}

func protocolFixture(t *testing.T) *fixture {
	f := newFixture(t)
	f.do(t, "PUT", "/v1/models/bearing/versions/1", token, artifact(t, "bearing", "1", []float64{0.5, 0.25, 0.1}, "bearing_temp", "vibration"))
	if code, body := f.do(t, "POST", "/v1/models/bearing/activate", token, []byte(`{"version":"1","default":true}`)); code != 200 {
		t.Fatalf("activate: %d %v", code, body)
	}
	return f
}

// The same window in JSON, binary FP64, binary FP32, [1, n] and nested
// data gives the same outputs; binary outputs hold the JSON ones' values.
func TestInferBinaryAndShapes(t *testing.T) {
	f := protocolFixture(t)
	url := f.srv.URL + "/v2/models/bearing/infer"
	temp := []float64{1, 4, 2.5, 3}
	vib := []float64{2, 0, 1.5, 0.25} // exact in float32 too
	ts := []float64{1700000000000, 1700000001000, 1700000002000, 1700000003000}
	js := fmt.Sprintf(`{"inputs":[{"name":"bearing_temp","shape":[4],"datatype":"FP64","data":[%s]},{"name":"vibration","shape":[4],"datatype":"FP64","data":[%s]},{"name":"timestamp","shape":[4],"datatype":"INT64","data":[%s]}]}`,
		jsonArr(temp), jsonArr(vib), jsonArr(ts))
	code, body, bin, _ := post(t, url, []byte(js), -1)
	if code != 200 || bin != nil {
		t.Fatalf("JSON infer: %d %v", code, body)
	}
	want, wantShape := outputs(t, body, nil)
	for i := range temp {
		if s := 0.5*temp[i] + 0.25*vib[i] + 0.1; math.Abs(want["score"][i]-s) > 1e-12 {
			t.Fatalf("score[%d] = %v, want %v", i, want["score"][i], s)
		}
	}
	if fmt.Sprint(wantShape["score"]) != "[4]" || fmt.Sprint(wantShape["contributions"]) != "[4 2]" {
		t.Fatalf("shapes %v", wantShape)
	}

	cases := []struct {
		name      string
		body      func() ([]byte, int)
		binaryOut bool
		shape     string
	}{
		{"binary FP64 in, binary out", func() ([]byte, int) {
			return binaryBody(t, map[string]any{"binary_data_output": true}, nil,
				binInput{"bearing_temp", "FP64", []int{4}, temp}, binInput{"vibration", "FP64", []int{4}, vib}, binInput{"timestamp", "INT64", []int{4}, ts})
		}, true, "[4]"},
		{"binary FP32 in, JSON out", func() ([]byte, int) {
			return binaryBody(t, nil, nil,
				binInput{"bearing_temp", "FP32", []int{4}, temp}, binInput{"vibration", "FP32", []int{4}, vib}, binInput{"timestamp", "INT64", []int{4}, ts})
		}, false, "[4]"},
		{"binary [1, n], outputs chosen binary", func() ([]byte, int) {
			outs := []map[string]any{}
			for _, o := range outputNames {
				outs = append(outs, map[string]any{"name": o, "parameters": map[string]any{"binary_data": true}})
			}
			return binaryBody(t, nil, outs,
				binInput{"bearing_temp", "FP64", []int{1, 4}, temp}, binInput{"vibration", "FP32", []int{1, 4}, vib}, binInput{"timestamp", "INT64", []int{1, 4}, ts})
		}, true, "[1 4]"},
		{"JSON [1, n] nested FP32", func() ([]byte, int) {
			return []byte(fmt.Sprintf(`{"inputs":[{"name":"bearing_temp","shape":[1,4],"datatype":"FP32","data":[[%s]]},{"name":"vibration","shape":[1,4],"datatype":"FP32","data":[[%s]]},{"name":"timestamp","shape":[1,4],"datatype":"INT64","data":[[%s]]}]}`,
				jsonArr(temp), jsonArr(vib), jsonArr(ts))), -1
		}, false, "[1 4]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, hlen := tc.body()
			code, body, bin, hdr := post(t, url, b, hlen)
			if code != 200 {
				t.Fatalf("%d %v", code, body)
			}
			if tc.binaryOut != (bin != nil) || tc.binaryOut != (hdr.Get("Content-Type") == "application/octet-stream") {
				t.Fatalf("binary answer %v (%d bytes, %s), want %v", bin != nil, len(bin), hdr.Get("Content-Type"), tc.binaryOut)
			}
			if tc.binaryOut && len(bin) != 4*8*4+4*2+4*2*8 {
				t.Fatalf("binary part %d bytes", len(bin))
			}
			got, shape := outputs(t, body, bin)
			if fmt.Sprint(shape["score"]) != tc.shape {
				t.Fatalf("score shape %v, want %s", shape["score"], tc.shape)
			}
			for name, w := range want {
				if fmt.Sprint(got[name]) != fmt.Sprint(w) {
					t.Errorf("%s = %v, want %v", name, got[name], w)
				}
			}
		})
	}

	// Only the requested outputs are returned, in the model's order.
	b, hlen := binaryBody(t, nil, []map[string]any{{"name": "alert"}, {"name": "score", "parameters": map[string]any{"binary_data": true}}},
		binInput{"bearing_temp", "FP64", []int{4}, temp}, binInput{"vibration", "FP64", []int{4}, vib})
	code, body, bin, _ = post(t, url, b, hlen)
	if code != 200 {
		t.Fatalf("chosen outputs: %d %v", code, body)
	}
	got, _ := outputs(t, body, bin)
	if len(got) != 2 || len(bin) != 4*8 || fmt.Sprint(got["score"]) != fmt.Sprint(want["score"]) {
		t.Fatalf("chosen outputs: %v (%d binary bytes)", got, len(bin))
	}
}

func jsonArr(v []float64) string {
	b, _ := json.Marshal(v)
	return strings.Trim(string(b), "[]")
}

// Refused binary requests and bodies say what is wrong, as JSON.
func TestInferRefusals(t *testing.T) {
	f := protocolFixture(t)
	url := f.srv.URL + "/v2/models/bearing/infer"
	sizeHeader := `{"inputs":[{"name":"bearing_temp","shape":[2],"datatype":"FP64","parameters":{"binary_data_size":8}}]}`
	good, glen := binaryBody(t, nil, nil, binInput{"bearing_temp", "FP64", []int{2}, []float64{1, 2}}, binInput{"vibration", "FP64", []int{2}, []float64{1, 2}})
	cases := []struct {
		name string
		body []byte
		hlen int
		want string
	}{
		{"empty body", nil, -1, `request body is empty: send {"inputs"`},
		{"binary without header length", good, -1, "Inference-Header-Content-Length"},
		{"header length past the body", good, len(good) + 1, "at most the body's"},
		{"binary short", good[:len(good)-3], glen, "only 13 bytes of binary data remain"},
		{"binary long", append(append([]byte(nil), good...), 0, 0), glen, "2 bytes of binary data after"},
		{"size not the shape's", []byte(sizeHeader + "01234567"), len(sizeHeader), "shape [2] of FP64 is 16 bytes"},
		{"no data", []byte(`{"inputs":[{"name":"bearing_temp","shape":[2],"datatype":"FP64"}]}`), -1, "has no data and no binary_data_size"},
		{"shape [2, 2]", []byte(`{"inputs":[{"name":"bearing_temp","shape":[2,2],"datatype":"FP64","data":[1,2,3,4]}]}`), -1, "want [n], [1, n] or [n, 1]"},
		{"nested not numbers", []byte(`{"inputs":[{"name":"bearing_temp","shape":[1,2],"datatype":"FP64","data":[["a","b"]]}]}`), -1, "is not a number"},
		{"unknown output", []byte(`{"inputs":[{"name":"bearing_temp","shape":[1],"datatype":"FP64","data":[1]}],"outputs":[{"name":"rul"}]}`), -1, `output "rul" is not an output`},
		{"binary_data_output not bool", []byte(`{"inputs":[{"name":"bearing_temp","shape":[1],"datatype":"FP64","data":[1]}],"parameters":{"binary_data_output":"yes"}}`), -1, "want true or false"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _, hdr := post(t, url, tc.body, tc.hlen)
			if code != 400 || hdr.Get("Content-Type") != "application/json" || !strings.Contains(fmt.Sprint(body["error"]), tc.want) {
				t.Fatalf("%d %s %v, want 400 JSON mentioning %q", code, hdr.Get("Content-Type"), body, tc.want)
			}
		})
	}
}

// Every error is JSON {"error": ...}, the mux's 404 and 405 included, and
// a model without an active version says how to get one.
func TestErrorsAreJSON(t *testing.T) {
	f := newFixture(t)
	f.do(t, "PUT", "/v1/models/bearing/versions/7", token, artifact(t, "bearing", "7", []float64{0.5, 0.25, 0.1}, "bearing_temp", "vibration"))
	cases := []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/v2/nothing/here", 404, "no route GET /v2/nothing/here"},
		{"GET", "/v2/models/bearing/infer", 405, "allowed: POST"},
		{"DELETE", "/v1/models/bearing", 405, "method DELETE not allowed"},
		{"POST", "/v2/models/bearing/infer", 404, "model bearing has no active version (versions [7]): activate one with POST /v1/models/bearing/activate"},
		{"GET", "/v2/models/nope", 404, "model nope version"},
		{"POST", "/v2/models/bearing/versions/9/infer", 404, "model bearing version 9"},
	}
	if code, body := f.do(t, "POST", "/v1/models/bearing/activate", token, nil); code != 400 || !strings.Contains(fmt.Sprint(body["error"]), `request body is empty: send {"version": "<version>"} with a scope: "site"`) {
		t.Errorf("activate without a body: %d %v", code, body)
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, strings.NewReader(`{"inputs":[{"name":"bearing_temp","shape":[1],"datatype":"FP64","data":[1]}]}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e map[string]string
		if resp.StatusCode != tc.code || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(b, &e) != nil || !strings.Contains(e["error"], tc.want) {
			t.Errorf("%s %s: %d %s %q, want %d JSON error mentioning %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), b, tc.code, tc.want)
		}
	}
}

// The model repository and configuration extensions answer what the
// registry holds, and server metadata lists exactly what is implemented.
func TestRepositoryExtensions(t *testing.T) {
	f := protocolFixture(t)
	f.do(t, "PUT", "/v1/models/bearing/versions/2", token, artifact(t, "bearing", "2", []float64{1, 1, 0}, "bearing_temp", "vibration"))
	// An artifact the registry refuses is listed with the reason.
	bad := artifact(t, "bearing", "3", []float64{1, 1, 0}, "bearing_temp", "vibration")
	bad = bytes.Replace(bad, []byte(`"version": "3"`), []byte(`"version": "3", "parent_version": "x"`), 1)
	f.reg.Apply("artifact/bearing/3", bad)
	code, meta := f.do(t, "GET", "/v2", "", nil)
	if code != 200 || fmt.Sprint(meta["extensions"]) != "[binary_tensor_data model_repository model_configuration]" {
		t.Fatalf("server metadata: %d %v", code, meta)
	}
	for _, tc := range []struct{ body, want string }{
		{"", `[{"name":"bearing","version":"1","state":"READY"},{"name":"bearing","version":"2","state":"READY"},{"name":"bearing","version":"3","state":"UNAVAILABLE","reason":"artifact refused: model: checksum mismatch: stored `},
		{`{"ready":true}`, `[{"name":"bearing","version":"1","state":"READY"},{"name":"bearing","version":"2","state":"READY"}]`},
	} {
		resp, err := http.Post(f.srv.URL+"/v2/repository/index", "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(strings.TrimSpace(string(b)), tc.want) {
			t.Errorf("index %q: %d %s\nwant %s", tc.body, resp.StatusCode, b, tc.want)
		}
	}
	if code, body := f.do(t, "POST", "/v2/repository/index", "", []byte(`{"ready":1}`)); code != 400 || !strings.Contains(fmt.Sprint(body["error"]), `{"ready": true}`) {
		t.Errorf("bad index body: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v2/repository/models/bearing/load", token, nil); code != 200 {
		t.Errorf("load: %d %v", code, body)
	}
	for path, version := range map[string]string{"/v2/models/bearing/config": "1", "/v2/models/bearing/versions/2/config": "2"} {
		code, cfg := f.do(t, "GET", path, "", nil)
		if code != 200 || cfg["name"] != "bearing" || cfg["max_batch_size"].(float64) != 0 {
			t.Fatalf("%s: %d %v", path, code, cfg)
		}
		in := cfg["input"].([]any)
		if len(in) != 3 || in[0].(map[string]any)["name"] != "bearing_temp" || in[0].(map[string]any)["data_type"] != "TYPE_FP64" {
			t.Errorf("%s input %v", path, in)
		}
		if out := cfg["output"].([]any); len(out) != len(outputNames) || out[1].(map[string]any)["data_type"] != "TYPE_BOOL" {
			t.Errorf("%s output %v", path, out)
		}
		if vs := fmt.Sprint(cfg["version_policy"]); !strings.Contains(vs, "["+version+"]") {
			t.Errorf("%s version policy %s, want %s", path, vs, version)
		}
	}
}

// Unload takes a model out of service for inference and activation in
// every instance (a control record), load puts it back; a model that
// scores assets is not unloaded, and both are writes.
func TestRepositoryLoadUnload(t *testing.T) {
	f := protocolFixture(t) // bearing v1 is the fleet default
	f.do(t, "PUT", "/v1/models/spare/versions/1", token, artifact(t, "spare", "1", []float64{1, 1, 0}, "bearing_temp", "vibration"))
	infer := func(model string) (int, map[string]any) {
		return f.do(t, "POST", "/v2/models/"+model+"/versions/1/infer", "", []byte(`{"inputs":[{"name":"bearing_temp","shape":[1],"datatype":"FP64","data":[1]},{"name":"vibration","shape":[1],"datatype":"FP64","data":[2]}]}`))
	}
	index := func(body string) string {
		resp, err := http.Post(f.srv.URL+"/v2/repository/index", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	steps := []struct {
		method, path, tok string
		body              string
		code              int
		want              string
	}{
		{"POST", "/v2/repository/models/spare/unload", "", "", 401, ""},
		{"POST", "/v2/repository/models/bearing/unload", token, "", 409, "bearing is used by the fleet default"},
		{"POST", "/v2/repository/models/nope/unload", token, "", 404, "model nope"},
		{"POST", "/v2/repository/models/nope/load", token, "", 404, "no registered version"},
		{"POST", "/v2/repository/models/spare/unload", token, "", 200, ""},
		{"POST", "/v1/models/spare/activate", token, `{"version":"1","site":"east"}`, 400, "load it first with POST /v2/repository/models/spare/load"},
		{"PUT", "/v1/assets/p1/pin", token, `{"model":"spare"}`, 400, "unloaded"},
	}
	for _, st := range steps {
		var body []byte
		if st.body != "" {
			body = []byte(st.body)
		}
		code, got := f.do(t, st.method, st.path, st.tok, body)
		if code != st.code || !strings.Contains(fmt.Sprint(got["error"]), st.want) {
			t.Fatalf("%s %s: %d %v, want %d %q", st.method, st.path, code, got, st.code, st.want)
		}
	}
	if code, body := infer("spare"); code != 400 || !strings.Contains(fmt.Sprint(body["error"]), "model unloaded: spare") {
		t.Fatalf("infer on an unloaded model: %d %v", code, body)
	}
	if code, _ := f.do(t, "GET", "/v2/models/spare/ready", "", nil); code == 200 {
		t.Fatal("an unloaded model answers ready")
	}
	if got := index(""); !strings.Contains(got, `{"name":"spare","version":"1","state":"UNAVAILABLE","reason":"unloaded"}`) {
		t.Fatalf("index: %s", got)
	}
	if got := index(`{"ready":true}`); strings.Contains(got, "spare") {
		t.Fatalf("ready index lists the unloaded model: %s", got)
	}
	if code, body := infer("bearing"); code != 200 {
		t.Fatalf("the other model is disturbed: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v2/repository/models/spare/load", token, nil); code != 200 {
		t.Fatalf("load: %d %v", code, body)
	}
	if code, body := infer("spare"); code != 200 {
		t.Fatalf("infer after load: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v1/models/spare/activate", token, []byte(`{"version":"1","site":"east"}`)); code != 200 {
		t.Fatalf("activate after load: %d %v", code, body)
	}
	if code, body := f.do(t, "POST", "/v2/repository/models/spare/unload", token, nil); code != 409 || !strings.Contains(fmt.Sprint(body["error"]), "scope east") {
		t.Fatalf("unload of a model a site uses: %d %v", code, body)
	}
}
