package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/edge-agent/internal/config"
	"github.com/pdmstream/pdm/edge-agent/internal/mqtttest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

func TestPrintConfig(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-print-config"}, &out); err != nil {
		t.Fatal(err)
	}
	if out.String() != config.Sample || !strings.Contains(out.String(), "mqtt:") || !strings.Contains(out.String(), "# modbus:\n#   devices:\n") ||
		!strings.Contains(out.String(), "\nopcua:\n  endpoint:") {
		t.Fatalf("printed %q", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-batch", "0"},
		{"-assets", "pump-1=turbine"},
		{"-rate", "fast"},
		{"-degrade", "motor-1=cavitation"},
		{"-opcua.endpoint", "opc.tcp://127.0.0.1:4840"}, // and no opcua.assets
		{"-opcua.security-policy", "Basic128Rsa15"},
	} {
		err := run(context.Background(), append(args, "-http.addr", ""), &bytes.Buffer{})
		if err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// The built binary is killed with SIGKILL in mid-stream and started again
// on the same spool: every reading arrives, sequence numbers continue with
// no gap.
func TestKillAndRestartBinary(t *testing.T) {
	b := mqtttest.NewBroker(t)
	b.Start()
	bin := filepath.Join(t.TempDir(), "edge-agent")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	site := stacktest.Unique("kill")
	sub := mqtttest.Subscribe(t, b.Options(), site)
	spoolDir := t.TempDir()
	agentCmd := func(limit int) *exec.Cmd {
		cmd := exec.Command(bin, "-site", site, "-agent-id", site, "-assets", "pump-1=pump,motor-1=motor",
			"-rate", "2000", "-batch", "5", "-limit", fmt.Sprint(limit), "-mqtt.url", b.URL(),
			"-spool.dir", spoolDir, "-http.addr", "", "-log.level", "warn",
			"-mqtt.confirm=false") // no bridge here: a reading is done at the broker's PUBACK
		cmd.Stderr = os.Stderr
		return cmd
	}
	first := agentCmd(100000)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 20*time.Second, func() bool {
		return sub.Distinct()["pump-1"] >= 1000
	}, "first agent published too little: %v", func() any { return sub.Distinct() })
	first.Process.Kill()
	first.Wait()

	second := agentCmd(1000)
	if err := second.Run(); err != nil {
		t.Fatalf("second agent: %v", err)
	}
	// The spool cursor of the finished run records each asset's last
	// sequence number: the first run's spooled readings plus 1000.
	raw, err := os.ReadFile(filepath.Join(spoolDir, "cursor"))
	if err != nil {
		t.Fatal(err)
	}
	var cur struct{ Meta []byte }
	var last map[string]int
	if err := json.Unmarshal(raw, &cur); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cur.Meta, &last); err != nil {
		t.Fatal(err)
	}
	for _, asset := range []string{"pump-1", "motor-1"} {
		if last[asset] < 2000 {
			t.Fatalf("%s: last seq %d, want >= 2000 (>= 1000 from each run)", asset, last[asset])
		}
		stacktest.Eventually(t, 10*time.Second, func() bool { return sub.Distinct()[asset] == last[asset] },
			"%s: subscriber has %d distinct, want %d", asset, sub.Distinct()[asset], last[asset])
		sub.CheckComplete(t, []string{asset}, last[asset])
	}
}
