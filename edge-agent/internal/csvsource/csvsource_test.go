package csvsource

import (
	"context"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

func TestParseComma(t *testing.T) {
	f, err := Open("testdata/comma.csv")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Vibration_RMS__mm_s_", "bearing_temp", "Motor_Current", "status"}
	if !slices.Equal(f.Sensors, want) {
		t.Fatalf("sensors %q, want %q", f.Sensors, want)
	}
	for _, s := range f.Sensors {
		if !wire.ValidID(s) {
			t.Errorf("sensor name %q is not a valid id", s)
		}
	}
	if len(f.Rows) != 4 {
		t.Fatalf("%d rows", len(f.Rows))
	}
	if _, ok := f.Rows[2].Sensors["Vibration_RMS__mm_s_"]; ok {
		t.Error("empty cell became a value")
	}
	if _, ok := f.Rows[0].Sensors["status"]; ok {
		t.Error("text cell became a value")
	}
	if !math.IsNaN(f.Rows[3].Sensors["Motor_Current"]) {
		t.Error("NaN cell should stay NaN, for validation to count")
	}
	if got := f.Rows[1].At.Sub(f.Rows[0].At); got != time.Second {
		t.Errorf("row spacing %s", got)
	}
}

func TestParseSemicolonDecimalComma(t *testing.T) {
	f, err := Open("testdata/semicolon.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.Sensors, []string{"Pressure_bar", "Flow_m3_h", "speed"}) {
		t.Fatalf("sensors %q", f.Sensors)
	}
	if len(f.Rows) != 3 { // the row without values is skipped
		t.Fatalf("%d rows", len(f.Rows))
	}
	if v := f.Rows[0].Sensors["Pressure_bar"]; v != 6.02 {
		t.Errorf("decimal comma: %v", v)
	}
	if f.Rows[2].At.Sub(f.Rows[0].At) != 30*time.Second {
		t.Errorf("times %v %v", f.Rows[0].At, f.Rows[2].At)
	}
}

func TestParseErrors(t *testing.T) {
	for name, in := range map[string]string{
		"no time column": "a,b\n1,2\n",
		"bad timestamp":  "time,a\nyesterday,1\n",
		"no rows":        "time,a\n",
	} {
		if _, err := Parse(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f, err := Parse(strings.NewReader("Time,a\n1709287200,1\n1709287201.5,2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if d := f.Rows[1].At.Sub(f.Rows[0].At); d != 1500*time.Millisecond {
		t.Errorf("unix seconds: %s", d)
	}
}

func TestPlayerSpeedAndLoop(t *testing.T) {
	f, _ := Open("testdata/semicolon.csv") // rows 0s, 10s, 30s apart
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var slept []time.Duration
	p := NewPlayer(f, 10, true)
	p.now = func() time.Time { return clock }
	ctx := context.Background()
	// With a fake clock that jumps to each due time, record the waits.
	for i := 0; i < 5; i++ {
		before := clock
		p.wrap()
		due := p.dueOf(p.i)
		if d := due.Sub(before); d > 0 {
			clock = due
			slept = append(slept, d)
		}
		if _, err := p.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{time.Second, 2 * time.Second, 1500 * time.Millisecond, time.Second}
	if !slices.Equal(slept, want) {
		t.Fatalf("waits %v, want %v (10x speed, loop gap = mean spacing 15s)", slept, want)
	}

	fast := NewPlayer(f, 0, false)
	start := time.Now()
	for i := 0; i < 3; i++ {
		if _, err := fast.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := fast.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("end of file: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("speed 0 waited")
	}
}
