package config

import (
	"flag"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/edge-agent/internal/modbus"
	"github.com/pdmstream/pdm/edge-agent/internal/opcua"
	"github.com/pdmstream/pdm/pdmkit/compose"
	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
)

func TestDefaultsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	id := c.ClientID()
	if !strings.HasPrefix(id, "pdm-edge-"+c.AgentID+"-") || id != c.ClientID() {
		t.Errorf("client id %q", id)
	}
	c.Assets = "pump-9=pump"
	if c.ClientID() == id {
		t.Error("client id does not depend on the assets")
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // substrings the error must hold (both values)
	}{
		{"bad site", func(c *Config) { c.Site = "a/b" }, []string{`site ("a/b")`}},
		{"bad asset kind", func(c *Config) { c.Assets = "p1=turbine" }, []string{`assets ("p1=turbine")`, `kind "turbine"`}},
		{"asset twice", func(c *Config) { c.Assets = "p1=pump,p1=motor" }, []string{"listed twice"}},
		{"nothing to publish", func(c *Config) { c.Assets = "" }, []string{`assets ("")`, `csv.file ("")`, `modbus.devices (0)`, `opcua.endpoint ("")`}},
		{"modbus device", func(c *Config) { c.Modbus.Devices = []modbus.Device{{Asset: "plc-1", Address: "plc:502"}} }, []string{`modbus: device "plc-1": no groups`}},
		{"modbus asset clash", func(c *Config) { c.Modbus.Devices = []modbus.Device{plcDevice("pump-1")} }, []string{`modbus device asset ("pump-1") is also in assets`}},
		{"modbus csv clash", func(c *Config) {
			c.CSV.File, c.CSV.Asset, c.Modbus.Devices = "x.csv", "plc-1", []modbus.Device{plcDevice("plc-1")}
		},
			[]string{`modbus device asset ("plc-1") is also csv.asset ("plc-1")`}},
		{"modbus opcua clash", func(c *Config) { c.Modbus.Devices, c.OPCUA = []modbus.Device{plcDevice("plc-1")}, opcuaOne("plc-1") },
			[]string{`opcua asset "plc-1" is also modbus device asset ("plc-1")`}},
		{"negative rate", func(c *Config) { c.Rate = -1 }, []string{"rate (-1)"}},
		{"batch zero", func(c *Config) { c.Batch = 0 }, []string{"batch (0)"}},
		{"time scale", func(c *Config) { c.TimeScale = 0 }, []string{"time_scale (0)"}},
		{"step too long", func(c *Config) { c.TimeScale, c.Rate = 100000, 1 }, []string{"time_scale (100000)", "rate (1)"}},
		{"degrade unknown asset", func(c *Config) { c.Degrade = "pump-9=bearing_wear" }, []string{`"pump-9"`, `assets ("pump-1=pump,motor-1=motor")`}},
		{"cavitation on motor", func(c *Config) { c.Degrade = "motor-1=cavitation" }, []string{`mode "cavitation"`, `kind "motor"`}},
		{"bad delay", func(c *Config) { c.Degrade = "pump-1=bearing_wear@soon" }, []string{`delay "soon"`}},
		{"bad url", func(c *Config) { c.MQTT.URL = "localhost" }, []string{`mqtt.url ("localhost")`}},
		{"bad scheme", func(c *Config) { c.MQTT.URL = "http://x:1" }, []string{`scheme "http"`}},
		{"window", func(c *Config) { c.MQTT.Window = 0 }, []string{"mqtt.window (0)"}},
		{"spool smaller than segments", func(c *Config) { c.Spool.MaxBytes, c.Spool.SegmentBytes = 10000, 8192 }, []string{"spool.max_bytes (10000)", "spool.segment_bytes (8192)"}},
		{"limit and loop", func(c *Config) { c.CSV.File, c.CSV.Loop, c.Limit = "x.csv", true, 5 }, []string{"limit (5)", "csv.loop (true)"}},
		{"csv asset clash", func(c *Config) { c.CSV.File, c.CSV.Asset = "x.csv", "pump-1" }, []string{`csv.asset ("pump-1")`, `assets (`}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{`log.format ("xml")`}},
		{"opcua section", func(c *Config) { c.OPCUA.Endpoint = "opc.tcp://x:4840" }, []string{`opcua.endpoint ("opc.tcp://x:4840")`, "opcua.assets is empty"}},
		{"opcua asset clash", func(c *Config) { c.OPCUA = opcuaOne("pump-1") }, []string{`opcua asset "pump-1" is also in assets ("pump-1=pump,motor-1=motor")`}},
		{"opcua csv clash", func(c *Config) { c.OPCUA, c.CSV.File = opcuaOne("csv-1"), "x.csv" }, []string{`opcua asset "csv-1" is also csv.asset ("csv-1")`}},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, []string{`log.level ("loud")`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mod(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func plcDevice(asset string) modbus.Device {
	return modbus.Device{Asset: asset, Address: "plc:502", Groups: []modbus.Group{{Tags: []modbus.Tag{{Sensor: "temp"}}}}}
}

// Modbus devices alone are something to publish, and change the client id.
func TestModbusOnly(t *testing.T) {
	c := Default()
	id := c.ClientID()
	c.Assets = ""
	c.Modbus.Devices = []modbus.Device{plcDevice("plc-1")}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Assets = Default().Assets
	if c.ClientID() == id {
		t.Error("client id does not depend on the modbus devices")
	}
}

func opcuaOne(asset string) opcua.Config {
	c := opcua.Default()
	c.Endpoint = "opc.tcp://127.0.0.1:4840"
	c.Assets = []opcua.Asset{{ID: asset, Items: []opcua.Item{{Node: "ns=2;s=x", Sensor: "x"}}}}
	return c
}

// An OPC UA-only gateway validates; its assets change the client id, and a
// config without OPC UA keeps the id it had before the section existed.
func TestOPCUAConfig(t *testing.T) {
	c := Default()
	c.AgentID = "gw-1"
	if id := c.ClientID(); id != "pdm-edge-gw-1-"+fmt.Sprintf("%08x", fnv32("plant1|pump-1=pump,motor-1=motor||csv-1")) {
		t.Errorf("client id without OPC UA changed: %s", id)
	}
	before := c.ClientID()
	c.Assets, c.OPCUA = "", opcuaOne("pump-7")
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.ClientID() == before {
		t.Error("client id does not depend on the OPC UA assets")
	}
	// The example gateway config in the opcua package loads whole.
	d := Default()
	if err := pdmconfig.Load("../opcua/testdata/agent.yaml", &d); err != nil {
		t.Fatal(err)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(d.OPCUA.Assets) != 2 || d.OPCUA.StaleAfter != 30*time.Second || d.Assets != "" {
		t.Fatalf("loaded %+v", d.OPCUA)
	}
	// Flags and environment reach the section.
	t.Setenv("PDM_OPCUA_PASSWORD", "from-env")
	e := Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	apply := pdmconfig.BindFlags(fs, &e)
	if err := fs.Parse([]string{"-opcua.endpoint", "opc.tcp://10.0.0.5:4840", "-opcua.stale-after", "5s", "-opcua.username", "edge"}); err != nil {
		t.Fatal(err)
	}
	if err := pdmconfig.Load("", &e); err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	if e.OPCUA.Endpoint != "opc.tcp://10.0.0.5:4840" || e.OPCUA.StaleAfter != 5*time.Second || e.OPCUA.Username != "edge" || e.OPCUA.Password != "from-env" {
		t.Fatalf("flags/env not applied: %+v", e.OPCUA)
	}
	if s := pdmconfig.String(&e); strings.Contains(s, "from-env") {
		t.Error("the OPC UA password is printed")
	}
}

func fnv32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

func TestParseDegrade(t *testing.T) {
	got, err := ParseDegrade("pump-1=bearing_wear@30m/48h, motor-1=misalignment")
	if err != nil {
		t.Fatal(err)
	}
	want := []Degradation{
		{Asset: "pump-1", Mode: "bearing_wear", After: 30 * time.Minute, TTF: 48 * time.Hour},
		{Asset: "motor-1", Mode: "misalignment"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range []string{"pump-1", "p=m@-1s", "p=m/0s"} {
		if _, err := ParseDegrade(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The flags the end-to-end tests use, applied over defaults.
func TestFlags(t *testing.T) {
	c := Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	apply := pdmconfig.BindFlags(fs, &c)
	err := fs.Parse([]string{"-site", "S", "-agent-id", "gw-1", "-assets", "pump-1=pump,motor-1=motor", "-rate", "0",
		"-batch", "5", "-limit", "100", "-mqtt.url", "tcp://127.0.0.1:1884", "-spool.dir", "/tmp/x", "-seed", "9",
		"-time-scale", "3600", "-degrade", "pump-1=bearing_wear@30s"})
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(); err != nil {
		t.Fatal(err)
	}
	if c.Site != "S" || c.AgentID != "gw-1" || c.Rate != 0 || c.Batch != 5 || c.Limit != 100 || c.MQTT.URL != "tcp://127.0.0.1:1884" ||
		c.Spool.Dir != "/tmp/x" || c.Seed != 9 || c.TimeScale != 3600 || c.Degrade != "pump-1=bearing_wear@30s" {
		t.Fatalf("flags not applied: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The embedded sample is a valid config file, so the docs cannot drift.
func TestSampleLoads(t *testing.T) {
	c := Default()
	if err := pdmconfig.LoadString(Sample, &c); err != nil { // the file alone, not the test's environment
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	d := Default()
	d.AgentID = c.AgentID
	if pdmconfig.String(&c) != pdmconfig.String(&d) {
		t.Errorf("sample values differ from Default():\n%s\nvs\n%s", pdmconfig.String(&c), pdmconfig.String(&d))
	}
}

// Each source's sample is in the printed sample, commented out; with the
// comment marks taken off it loads and validates, so an operator can start
// from it.
func TestSourceSamples(t *testing.T) {
	if !strings.Contains(Sample, commented(modbus.Sample)) || !strings.Contains(Sample, "\n# modbus:\n#   devices:\n") {
		t.Fatalf("the modbus sample is not in Sample, commented out:\n%s", Sample)
	}
	c := Default()
	if err := pdmconfig.LoadString(sample+modbus.Sample, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := c.Modbus.Assets(); len(got) != 1 || got[0] != "press-1" {
		t.Errorf("modbus assets %v from the sample", got)
	}
}

func TestEnvKeys(t *testing.T) {
	keys := pdmconfig.EnvKeys(&Config{})
	for _, k := range []string{"PDM_MQTT_URL", "PDM_HTTP_ADDR", "PDM_LOG_LEVEL", "PDM_LOG_FORMAT", "PDM_OPCUA_ENDPOINT", "PDM_OPCUA_PASSWORD", "PDM_RATE", "PDM_BATCH", "PDM_LIMIT", "PDM_MQTT_CONFIRM"} {
		if !slices.Contains(keys, k) {
			t.Errorf("config does not read %s", k)
		}
	}
}

// Every PDM_* key docker-compose.yml gives the edge-agent service is one
// the config reads, except the keys every one of the project's services gets
// from the file's shared environment anchor (the stack's addresses), and the
// values there load and validate.
func TestComposeEnv(t *testing.T) {
	path := filepath.Join("..", "..", "..", "docker-compose.yml")
	env, err := compose.ServiceEnv(path, "edge-agent")
	if err != nil {
		t.Fatal(err)
	}
	f, err := compose.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	shared := map[string]int{}
	built := 0
	for _, s := range f.Services {
		if s.Build == nil {
			continue
		}
		built++
		for _, k := range s.Environment.Keys() {
			shared[k]++
		}
	}
	keys := pdmconfig.EnvKeys(&Config{})
	for _, k := range compose.Unread(env, keys) {
		if built > 1 && shared[k] == built {
			t.Logf("ignoring %s: every service gets it from the shared anchor", k)
			delete(env, k)
			continue
		}
		t.Errorf("docker-compose.yml sets %s for edge-agent, but the config does not read it (reads %v)", k, keys)
	}
	for k, v := range env {
		if strings.HasPrefix(k, "PDM_") {
			t.Setenv(k, v)
		}
	}
	c := Default()
	if err := pdmconfig.Load("", &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("compose environment: %v", err)
	}
}
