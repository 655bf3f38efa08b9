package api

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
)

// Uploads: a signed artifact is stored and scores; an unsigned one, one
// changed after signing and one signed by a key the scorer does not trust
// are refused with 422 and the reason, and change nothing.
func TestUploadSignatures(t *testing.T) {
	f := newFixture(t)
	weights := []float64{0.5, 0.25, 0.1}
	features := []string{"bearing_temp", "vibration"}
	reload := func(raw []byte) *model.Artifact {
		a, err := model.Load(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	encode := func(a *model.Artifact) []byte {
		var buf bytes.Buffer
		if err := a.Write(&buf); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	unsigned := reload(artifact(t, "bearing", "2", weights, features...))
	unsigned.Signature = nil
	tampered := reload(artifact(t, "bearing", "3", weights, features...))
	tampered.Weights[1] = 0.26
	_, stranger, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	untrusted := reload(artifact(t, "bearing", "4", weights, features...))
	if err := untrusted.Sign(stranger); err != nil {
		t.Fatal(err)
	}

	if code, body := f.do(t, "PUT", "/v1/models/bearing/versions/1", token, artifact(t, "bearing", "1", weights, features...)); code != http.StatusCreated {
		t.Fatalf("signed: %d %v", code, body)
	}
	for _, tc := range []struct {
		version string
		raw     []byte
		reason  string
	}{
		{"2", encode(unsigned), "unsigned artifact: bearing 2 has no signature"},
		{"3", encode(tampered), "bad signature: bearing 3: the signature by key"},
		{"4", encode(untrusted), "not among the trusted keys"},
	} {
		code, body := f.do(t, "PUT", "/v1/models/bearing/versions/"+tc.version, token, tc.raw)
		if code != http.StatusUnprocessableEntity || !strings.Contains(fmt.Sprint(body["error"]), tc.reason) {
			t.Errorf("version %s: %d %v, want 422 with %q", tc.version, code, body, tc.reason)
		}
	}
	code, body := f.do(t, "GET", "/v1/models/bearing", "", nil)
	versions, _ := body["versions"].([]any)
	if code != 200 || len(versions) != 1 || versions[0].(map[string]any)["signed_by"] != model.KeyID(modeltest.Public) {
		t.Fatalf("model: %d %v", code, body)
	}
	f.do(t, "POST", "/v1/models/bearing/activate", token, []byte(`{"version":"1","default":true}`))
	req := `{"inputs":[
		{"name":"bearing_temp","shape":[1],"datatype":"FP64","data":[1]},
		{"name":"vibration","shape":[1],"datatype":"FP64","data":[2]}]}`
	if code, body := f.do(t, "POST", "/v2/models/bearing/infer", "", []byte(req)); code != 200 || body["model_version"] != "1" {
		t.Fatalf("infer with the signed version: %d %v", code, body)
	}
}
