package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// TestAPITokens: a real scorer with a read and a write token answers
// anyone on its open routes; reads, inference included, need a token (401
// without one or with a wrong one); the read token reads but cannot write
// (403, insufficient scope); the write token does both. A scorer without a
// write token refuses every write with 403 "writes are disabled", which is
// not the answer to a wrong token, and says at start that writes are off.
// No token appears in either log.
func TestAPITokens(t *testing.T) {
	stacktest.KafkaBrokers(t) // skips under -short before the build
	_, _, bin := binaries(t)
	const readTok, writeTok = "read-7f3a9c", "write-51d2e8"
	api, guarded := startScorerEnv(t, bin, stacktest.Topic(t, "auth-readings", 1),
		"PDM_API_READ_TOKEN="+readTok, "PDM_API_TOKEN="+writeTok, trustTestKey())
	base := "http://" + api
	artifact := forecaster(t)
	infer := []byte(`{"inputs":[{"name":"bearing_temp","shape":[8],"datatype":"FP64","data":[60,61,62,61,60,59,60,61]},` +
		`{"name":"vibration","shape":[8],"datatype":"FP64","data":[1,1.1,1,0.9,1,1.1,1,0.9]}]}`)
	steps := []struct {
		what, method, path, token string
		body                      []byte
		code                      int
		msg                       string
	}{
		{"health is open", "GET", "/v2/health/ready", "", nil, 200, ""},
		{"the document is open", "GET", "/openapi.json", "", nil, 200, ""},
		{"a read without a token", "GET", "/v1/models", "", nil, 401, "read scope is required"},
		{"a read with a wrong token", "GET", "/v1/models", "nope", nil, 401, "invalid token"},
		{"a read with the read token", "GET", "/v1/models", readTok, nil, 200, ""},
		{"an upload with the read token", "PUT", "/v1/models/bearing/versions/1", readTok, artifact, 403, "needs the write token"},
		{"an upload with the write token", "PUT", "/v1/models/bearing/versions/1", writeTok, artifact, 201, ""},
		{"inference without a token", "POST", "/v2/models/bearing/versions/1/infer", "", infer, 401, "read scope is required"},
		{"inference with the read token", "POST", "/v2/models/bearing/versions/1/infer", readTok, infer, 200, ""},
		{"inference with the write token", "POST", "/v2/models/bearing/versions/1/infer", writeTok, infer, 200, ""},
	}
	for _, st := range steps {
		code, body := call(t, st.method, base+st.path, st.token, st.body)
		var e struct{ Error string }
		_ = json.Unmarshal(body, &e)
		if code != st.code || !strings.Contains(e.Error, st.msg) {
			t.Errorf("%s: %d %s, want %d %q", st.what, code, body, st.code, st.msg)
		}
	}

	api2, open := startScorerEnv(t, bin, stacktest.Topic(t, "auth-readings", 1), trustTestKey())
	code, body := call(t, "PUT", "http://"+api2+"/v1/models/bearing/versions/1", writeTok, artifact)
	if code != http.StatusForbidden || !strings.Contains(string(body), "writes are disabled on this server: set http.token (PDM_API_TOKEN)") {
		t.Errorf("upload to a scorer without a write token: %d %s, want 403 writes are disabled", code, body)
	}
	if code, _ := call(t, "GET", "http://"+api2+"/v1/models", "", nil); code != http.StatusOK {
		t.Errorf("a read from a scorer without a read token: %d, want 200", code)
	}
	if log := open.Log(); !strings.Contains(log, "writes are off") || !strings.Contains(log, "reads are open") {
		t.Errorf("the scorer without tokens does not say that writes are off and reads open:\n%s", log)
	}
	for _, p := range []*stacktest.Proc{guarded, open} {
		if log := p.Log(); strings.Contains(log, readTok) || strings.Contains(log, writeTok) {
			t.Fatalf("a token is in the log:\n%s", log)
		}
	}
}

// TestAPIOverTLS: with http.tls.cert_file and key_file the scorer serves
// HTTPS only: a client trusting the CA reads its health and models, a
// plain-HTTP request is refused, and `scorer healthcheck` with the same
// settings probes it over TLS.
func TestAPIOverTLS(t *testing.T) {
	stacktest.KafkaBrokers(t) // skips under -short before the build
	_, _, bin := binaries(t)
	ca, cert, key := stacktest.PKI(t)
	addr := stacktest.FreeAddr(t)
	env := []string{"PDM_HTTP_ADDR=" + addr, "PDM_HTTP_TLS_CERT_FILE=" + cert, "PDM_HTTP_TLS_KEY_FILE=" + key}
	brokers := strings.Join(stacktest.KafkaBrokers(t), ",")
	p := stacktest.Start(t, append([]string{trustTestKey()}, env...), bin, "serve", "-log.level", "info",
		"-kafka.brokers", brokers, "-kafka.group", stacktest.Unique("tls"),
		"-kafka.readings", stacktest.Topic(t, "tls-readings", 1), "-kafka.scores", stacktest.Topic(t, "tls-scores", 1),
		"-kafka.alerts", stacktest.Topic(t, "tls-alerts", 1), "-kafka.models", stacktest.Topic(t, "tls-models", 1),
		"-kafka.retrain", "", "-mqtt.url", "", "-influx.url", "")

	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(url string) int {
		resp, err := client.Get(url)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	stacktest.Eventually(t, time.Minute, func() bool { return get("https://"+addr+"/v2/health/ready") == http.StatusOK },
		"the scorer is not ready over HTTPS:\n%s", func() any { return p.Log() })
	if code := get("https://" + addr + "/v1/models"); code != http.StatusOK {
		t.Errorf("GET /v1/models over HTTPS: %d", code)
	}
	if resp, err := http.Get("http://" + addr + "/v2/health/ready"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Error("a plain-HTTP request to the HTTPS scorer succeeded")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := exec.CommandContext(ctx, bin, "healthcheck")
	hc.Env = append(os.Environ(), env...)
	if out, err := hc.CombinedOutput(); err != nil {
		t.Errorf("scorer healthcheck over TLS: %v\n%s", err, out)
	}
	if !strings.Contains(p.Log(), "tls=true") {
		t.Errorf("the scorer does not log that it serves TLS:\n%s", p.Log())
	}
}
