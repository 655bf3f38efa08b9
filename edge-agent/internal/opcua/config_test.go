package opcua

import (
	"os"
	"strings"
	"testing"
	"time"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
)

func valid() Config {
	c := Default()
	c.Endpoint = "opc.tcp://127.0.0.1:4840"
	c.Assets = []Asset{{ID: "pump-7", Items: []Item{{Node: "ns=2;s=Pump7.Vibration", Sensor: "vibration_rms"}}}}
	return c
}

func TestValidate(t *testing.T) {
	if c := Default(); c.Validate() != nil || c.Enabled() {
		t.Fatalf("default: %v, enabled %v", c.Validate(), c.Enabled())
	}
	if c := valid(); c.Validate() != nil {
		t.Fatal(c.Validate())
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string
	}{
		{"assets without endpoint", func(c *Config) { c.Endpoint = "" }, []string{"opcua.assets (1 assets) without opcua.endpoint"}},
		{"endpoint without assets", func(c *Config) { c.Assets = nil }, []string{`opcua.endpoint ("opc.tcp://127.0.0.1:4840")`, "opcua.assets is empty"}},
		{"bad scheme", func(c *Config) { c.Endpoint = "tcp://x:4840" }, []string{`opcua.endpoint ("tcp://x:4840")`}},
		{"bad policy while off", func(c *Config) { c.Endpoint, c.Assets, c.SecurityPolicy = "", nil, "Basic128Rsa15" }, []string{`opcua.security_policy ("Basic128Rsa15")`}},
		{"bad policy", func(c *Config) { c.SecurityPolicy = "Basic128Rsa15" }, []string{`opcua.security_policy ("Basic128Rsa15")`}},
		{"mode with none", func(c *Config) { c.SecurityMode = ModeSign }, []string{`opcua.security_mode ("Sign")`, `opcua.security_policy ("None")`}},
		{"none with basic256sha256", func(c *Config) {
			c.SecurityPolicy, c.Certificate, c.PrivateKey = PolicyBasic256Sha256, "c.pem", "k.pem"
		}, []string{`opcua.security_mode ("None")`, "want Sign or SignAndEncrypt"}},
		{"no certificate", func(c *Config) { c.SecurityPolicy, c.SecurityMode = PolicyBasic256Sha256, ModeSign }, []string{`opcua.certificate ("")`, `opcua.private_key ("")`}},
		{"password without user", func(c *Config) { c.Password = "x" }, []string{"opcua.password", `opcua.username ("")`}},
		{"publishing interval", func(c *Config) { c.PublishingInterval = time.Millisecond }, []string{"opcua.publishing_interval (1ms)"}},
		{"stale before publish", func(c *Config) { c.StaleAfter = 100 * time.Millisecond }, []string{"opcua.stale_after (100ms)", "opcua.publishing_interval (1s)"}},
		{"negative stale", func(c *Config) { c.StaleAfter = -time.Second }, []string{"opcua.stale_after (-1s)"}},
		{"timeout", func(c *Config) { c.Timeout = 0 }, []string{"opcua.timeout (0s)"}},
		{"reconnect", func(c *Config) { c.MaxReconnectInterval = 0 }, []string{"opcua.max_reconnect_interval (0s)"}},
		{"bad asset id", func(c *Config) { c.Assets[0].ID = "a/b" }, []string{`opcua.assets[0].id ("a/b")`}},
		{"asset twice", func(c *Config) { c.Assets = append(c.Assets, c.Assets[0]) }, []string{`opcua.assets[1].id ("pump-7") is listed twice`}},
		{"no items", func(c *Config) { c.Assets[0].Items = nil }, []string{`opcua asset "pump-7" has 0 items`}},
		{"bad node", func(c *Config) { c.Assets[0].Items[0].Node = "Pump7.Vibration" }, []string{`items[0].node ("Pump7.Vibration")`}},
		{"bad node type", func(c *Config) { c.Assets[0].Items[0].Node = "ns=2;x=1" }, []string{`items[0].node ("ns=2;x=1")`}},
		{"bad namespace", func(c *Config) { c.Assets[0].Items[0].Node = "ns=x;s=1" }, []string{`items[0].node ("ns=x;s=1")`}},
		{"empty node", func(c *Config) { c.Assets[0].Items[0].Node = "" }, []string{`items[0].node ("")`}},
		{"reserved sensor", func(c *Config) { c.Assets[0].Items[0].Sensor = "seq" }, []string{`items[0].sensor ("seq")`}},
		{"bad sensor", func(c *Config) { c.Assets[0].Items[0].Sensor = "Motor Current" }, []string{`items[0].sensor ("Motor Current")`}},
		{"sensor twice", func(c *Config) {
			c.Assets[0].Items = append(c.Assets[0].Items, Item{Node: "ns=2;i=5", Sensor: "vibration_rms"})
		}, []string{`sensor "vibration_rms" is listed twice`}},
		{"sampling", func(c *Config) { c.Assets[0].Items[0].SamplingInterval = -time.Second }, []string{"items[0].sampling_interval (-1s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
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

// section is the edge agent's config as far as this package is concerned.
type section struct {
	OPCUA Config `yaml:"opcua"`
}

// The embedded sample is the section with every default, so the docs cannot
// drift; its commented example and testdata/agent.yaml are valid configs.
func TestSample(t *testing.T) {
	s := section{OPCUA: Default()}
	if err := pdmconfig.LoadString(Sample, &s); err != nil {
		t.Fatal(err)
	}
	d := section{OPCUA: Default()}
	if pdmconfig.String(&s) != pdmconfig.String(&d) {
		t.Errorf("sample differs from Default():\n%s\nvs\n%s", pdmconfig.String(&s), pdmconfig.String(&d))
	}
	// The commented example, uncommented, loads and validates.
	var example []string
	for _, line := range strings.Split(Sample, "\n") {
		if rest, ok := strings.CutPrefix(line, "  # "); ok {
			example = append(example, "  "+rest)
		} else if !strings.Contains(line, "assets: []") {
			example = append(example, line)
		}
	}
	e := section{OPCUA: Default()}
	if err := pdmconfig.LoadString(strings.Join(example, "\n"), &e); err != nil {
		t.Fatalf("commented example: %v", err)
	}
	e.OPCUA.Endpoint = "opc.tcp://127.0.0.1:4840"
	if err := e.OPCUA.Validate(); err != nil || len(e.OPCUA.Assets) != 1 || len(e.OPCUA.Assets[0].Items) != 2 ||
		e.OPCUA.Assets[0].Items[0].SamplingInterval != 500*time.Millisecond {
		t.Fatalf("commented example: %v %+v", err, e.OPCUA.Assets)
	}
}

func TestTestdataAgentConfig(t *testing.T) {
	b, err := os.ReadFile("testdata/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Only the opcua section is checked here; the agent's config test loads
	// the whole file.
	var lines []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "opcua:") {
			in = true
		} else if l != "" && !strings.HasPrefix(l, " ") && !strings.HasPrefix(l, "#") {
			in = false
		}
		if in {
			lines = append(lines, l)
		}
	}
	s := section{OPCUA: Default()}
	if err := pdmconfig.LoadString(strings.Join(lines, "\n"), &s); err != nil {
		t.Fatal(err)
	}
	if err := s.OPCUA.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := s.OPCUA.AssetIDs(); strings.Join(got, ",") != "pump-7,motor-3" {
		t.Fatalf("assets %v", got)
	}
}
