package model

import (
	"bytes"
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/valid.json")

// TestSeedIsCurrent checks testdata/valid.json, the fuzz seed, is what the
// current encoder writes for the sample artifact; -update rewrites it.
func TestSeedIsCurrent(t *testing.T) {
	want := encode(t, sample(t))
	if *update {
		if err := os.WriteFile("testdata/valid.json", want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("testdata/valid.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("testdata/valid.json differs from the encoder's output; run go test ./model -run TestSeedIsCurrent -update")
	}
}
