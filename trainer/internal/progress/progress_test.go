package progress

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

// clock is a time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestLogLinesEveryInterval(t *testing.T) {
	var logs bytes.Buffer
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBar(&logs, slog.New(slog.NewTextHandler(&logs, nil)), "reading history", 5*time.Second, false, c.now)
	// Twelve chunks one second apart, 1,000 rows each.
	for i := 1; i <= 12; i++ {
		c.t = c.t.Add(time.Second)
		b.Report(1000*i, i, 12)
	}
	b.Report(99_999, 12, 12) // after the end: ignored
	b.Close()
	b.Close()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	want := []string{
		"rows=5000 chunk=5/12 rows_per_s=1000",
		"rows=10000 chunk=10/12 rows_per_s=1000",
		"rows=12000 chunk=12/12 rows_per_s=1000 elapsed=12s",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), logs.String())
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) || !strings.Contains(lines[i], `msg="reading history"`) {
			t.Errorf("line %d: %s\nwant %s", i, lines[i], w)
		}
	}
}

func TestTerminalBar(t *testing.T) {
	var out bytes.Buffer
	c := &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	b := newBar(&out, slog.New(slog.DiscardHandler), "reading history", 0, true, c.now)
	for i := 1; i <= 4; i++ {
		c.t = c.t.Add(time.Second)
		b.Report(250*i, i, 4)
	}
	b.Close()
	got := out.String()
	for _, w := range []string{"reading history: 1000 rows, 250 rows/s", "4/4", "100%"} {
		if !strings.Contains(got, w) {
			t.Errorf("bar output lacks %q:\n%q", w, got)
		}
	}
}

func TestNotATerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer taken for a terminal")
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) {
		t.Error("a file taken for a terminal")
	}
}
