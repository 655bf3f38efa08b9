package model

import (
	"os"
	"testing"
)

// TestWriteSeed regenerates testdata/valid.json when PDM_WRITE_SEED=1.
func TestWriteSeed(t *testing.T) {
	if os.Getenv("PDM_WRITE_SEED") != "1" {
		t.Skip("set PDM_WRITE_SEED=1 to regenerate testdata/valid.json")
	}
	if err := os.WriteFile("testdata/valid.json", encode(t, sample(t)), 0o644); err != nil {
		t.Fatal(err)
	}
}
