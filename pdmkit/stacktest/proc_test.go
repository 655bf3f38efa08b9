package stacktest

import (
	"os/exec"
	"testing"
)

func TestProcStopsAndKills(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	p := Start(t, nil, sleep, "60")
	p.Stop(t)
	if p.Cmd.ProcessState == nil || p.Cmd.ProcessState.Success() {
		t.Fatalf("after Stop: %v, want ended by SIGTERM", p.Cmd.ProcessState)
	}
	q := Start(t, nil, sleep, "60")
	q.Kill(t)
	q.Stop(t) // already gone: nothing to do
	if q.Cmd.ProcessState == nil || q.Cmd.ProcessState.String() != "signal: killed" {
		t.Fatalf("after Kill: %v", q.Cmd.ProcessState)
	}
}
