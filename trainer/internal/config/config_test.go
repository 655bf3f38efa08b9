package config

import (
	"bytes"
	"strings"
	"testing"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
	"gopkg.in/yaml.v3"
)

// TestSampleIsTheDefault: the embedded sample, read alone, gives exactly
// the defaults, so the documentation cannot drift from the code.
func TestSampleIsTheDefault(t *testing.T) {
	var got Config
	dec := yaml.NewDecoder(strings.NewReader(Sample))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := Default()
	var a, b bytes.Buffer
	yaml.NewEncoder(&a).Encode(got)
	yaml.NewEncoder(&b).Encode(want)
	if a.String() != b.String() {
		t.Fatalf("sample differs from the defaults:\nsample:\n%s\ndefaults:\n%s", a.String(), b.String())
	}
	if err := want.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestClassLookup(t *testing.T) {
	c := Default()
	c.Classes = []Class{{Name: "pumps", Assets: []string{"p1", "p2"}, Job: Job{Kind: "forecaster", MinRows: 900}}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	k := c.Class("p2")
	if k.Name != "pumps" || k.Job.Kind != "forecaster" || k.Job.MinRows != 900 || k.Job.Step != c.Job.Step {
		t.Fatalf("class of p2: %+v", k)
	}
	if k := c.Class("motor-9"); k.Name != "motor-9" || len(k.Assets) != 1 || k.Job != c.Job {
		t.Fatalf("an asset of no class: %+v", k)
	}
}

func TestValidate(t *testing.T) {
	cases := map[string]func(*Config){
		"kind":     func(c *Config) { c.Job.Kind = "rnn" },
		"holdout":  func(c *Config) { c.Job.Holdout = 1 },
		"resample": func(c *Config) { c.Influx.Resample = "maybe" },
		"asset twice": func(c *Config) {
			c.Classes = []Class{{Name: "a", Assets: []string{"x"}}, {Name: "b", Assets: []string{"x"}}}
		},
		"class job":      func(c *Config) { c.Classes = []Class{{Name: "a", Assets: []string{"x"}, Job: Job{MinRows: 3}}} },
		"scorer url":     func(c *Config) { c.Scorer.URL = "::" },
		"short history":  func(c *Config) { c.Job.History = c.Job.Step },
		"failure score":  func(c *Config) { c.Job.FailureScore = 1 },
		"bad class name": func(c *Config) { c.Classes = []Class{{Name: "a/b", Assets: []string{"x"}}} },
	}
	for name, edit := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			edit(&c)
			if err := c.Validate(); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

// TestEnvironment: the variables the README lists set the fields.
func TestEnvironment(t *testing.T) {
	t.Setenv("PDM_SCORER_URL", "http://scorer:8080")
	t.Setenv("PDM_TRAINER_DATA", "/var/lib/trainer")
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	if c.Scorer.URL != "http://scorer:8080" || c.DataDir != "/var/lib/trainer" {
		t.Fatalf("environment not applied: %+v %s", c.Scorer, c.DataDir)
	}
}
