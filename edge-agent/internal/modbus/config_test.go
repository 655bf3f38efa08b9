package modbus

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	pdmconfig "github.com/pdmstream/pdm/pdmkit/config"
)

func u8(v uint8) *uint8 { return &v }

func validDevice() Device {
	return Device{Asset: "plc-1", Address: "127.0.0.1:5020", Groups: []Group{{Name: "fast", Tags: []Tag{
		{Sensor: "temp", Address: 0, Type: "int16"},
		{Sensor: "flow", Table: "input", Address: 10, Type: "float32"},
	}}}}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want []string // substrings the error must hold: the entry and the values
	}{
		{"asset", func(c *Config) { c.Devices[0].Asset = "a/b" }, []string{`device "a/b"`, `asset ("a/b")`}},
		{"no asset", func(c *Config) { c.Devices[0].Asset = "" }, []string{`devices[0]`, `asset ("")`}},
		{"asset twice", func(c *Config) { c.Devices = append(c.Devices, c.Devices[0]) }, []string{`devices[1] asset ("plc-1")`, `devices[0]`}},
		{"no address", func(c *Config) { c.Devices[0].Address = "" }, []string{`device "plc-1": address ("")`, "required"}},
		{"address with scheme", func(c *Config) { c.Devices[0].Address = "tcp://plc:502" }, []string{`address ("tcp://plc:502")`, "without a scheme"}},
		{"bad port", func(c *Config) { c.Devices[0].Address = "plc:99999" }, []string{`address ("plc:99999")`, `port "99999"`}},
		{"negative timeout", func(c *Config) { c.Devices[0].Timeout = -time.Second }, []string{"timeout (-1s)"}},
		{"max_registers", func(c *Config) { c.Devices[0].MaxRegisters = 126 }, []string{"max_registers (126) must be 1..125"}},
		{"max_bits", func(c *Config) { c.Devices[0].MaxBits = 2001 }, []string{"max_bits (2001) must be 1..2000"}},
		{"word order", func(c *Config) { c.Devices[0].WordOrder = "middle" }, []string{`word_order ("middle")`, "big or little"}},
		{"no groups", func(c *Config) { c.Devices[0].Groups = nil }, []string{`device "plc-1": no groups`}},
		{"group twice", func(c *Config) {
			g := c.Devices[0].Groups[0]
			g.Tags = []Tag{{Sensor: "other"}}
			c.Devices[0].Groups = append(c.Devices[0].Groups, g)
		}, []string{`group "fast": name used twice`}},
		{"short interval", func(c *Config) { c.Devices[0].Groups[0].Interval = time.Millisecond }, []string{`group "fast": interval (1ms)`, "10ms"}},
		{"no tags", func(c *Config) { c.Devices[0].Groups[0].Tags = nil }, []string{`group "fast": no tags`}},
		{"sensor missing", func(c *Config) { c.Devices[0].Groups[0].Tags[1].Sensor = "" }, []string{`group "fast" tags[1]: sensor ("")`, "required"}},
		{"sensor name", func(c *Config) { c.Devices[0].Groups[0].Tags[0].Sensor = "oil temp" }, []string{`tag "oil temp": sensor ("oil temp")`}},
		{"reserved sensor", func(c *Config) { c.Devices[0].Groups[0].Tags[0].Sensor = "seq" }, []string{`sensor ("seq")`}},
		{"sensor twice", func(c *Config) {
			c.Devices[0].Groups = append(c.Devices[0].Groups, Group{Name: "slow", Tags: []Tag{{Sensor: "temp", Address: 5}}})
		}, []string{`group "slow" tag "temp": sensor ("temp") is also in group "fast"`}},
		{"table", func(c *Config) { c.Devices[0].Groups[0].Tags[0].Table = "holdings" }, []string{`tag "temp": table ("holdings")`}},
		{"type", func(c *Config) { c.Devices[0].Groups[0].Tags[0].Type = "int64" }, []string{`tag "temp": type ("int64")`}},
		{"float coil", func(c *Config) {
			c.Devices[0].Groups[0].Tags[0].Table, c.Devices[0].Groups[0].Tags[0].Type = "coil", "float32"
		},
			[]string{`type ("float32") with table ("coil")`}},
		{"bool register", func(c *Config) { c.Devices[0].Groups[0].Tags[0].Type = "bool" }, []string{`type ("bool") with table ("holding")`}},
		{"tag byte order", func(c *Config) { c.Devices[0].Groups[0].Tags[1].ByteOrder = "BA" }, []string{`tag "flow": byte_order ("BA")`}},
		{"float64 past the end", func(c *Config) {
			c.Devices[0].Groups[0].Tags[1].Address, c.Devices[0].Groups[0].Tags[1].Type = 65533, "float64"
		},
			[]string{`tag "flow": address (65533) with type float64 ends at 65536, past the last address 65535`}},
		{"float64 over max_registers", func(c *Config) {
			c.Devices[0].MaxRegisters = 3
			c.Devices[0].Groups[0].Tags[1].Type = "float64"
		}, []string{`tag "flow": type float64 takes 4 registers, more than max_registers (3)`}},
		{"scale", func(c *Config) { c.Devices[0].Groups[0].Tags[0].Scale = math.Inf(1) }, []string{`tag "temp": scale (+Inf)`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Devices: []Device{validDevice()}}
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

func TestDefaults(t *testing.T) {
	d := validDevice()
	d.Address = "plc.example"
	d.Groups[0].Name = ""
	d.Groups[0].Tags = append(d.Groups[0].Tags, Tag{Sensor: "run", Table: "coil", Address: 3},
		Tag{Sensor: "gw", Address: 7, Type: "uint32", WordOrder: "little", UnitID: u8(9), Scale: 2})
	d.ByteOrder = "little"
	dev, err := resolve(0, d)
	if err != nil {
		t.Fatal(err)
	}
	if dev.addr != "plc.example:502" || dev.timeout != DefaultTimeout || dev.reconnectMax != DefaultReconnectMax ||
		dev.limits != (limits{maxRegs: 125, maxBits: 2000, maxGap: 0}) {
		t.Errorf("device defaults: %+v", dev)
	}
	g := dev.groups[0]
	if g.name != "group-1" || g.interval != DefaultInterval {
		t.Errorf("group defaults: %q %s", g.name, g.interval)
	}
	temp, run, gw := g.points[0], g.points[2], g.points[3]
	if temp.unit != DefaultUnitID || temp.table != holding || temp.typ != typeInt16 || temp.scale != 1 || temp.wordLittle || !temp.byteLittle {
		t.Errorf("tag defaults: %+v", temp)
	}
	if run.typ != typeBool || run.table != coil {
		t.Errorf("coil default type: %+v", run)
	}
	if gw.unit != 9 || !gw.wordLittle || !gw.byteLittle || gw.scale != 2 {
		t.Errorf("tag overrides: %+v", gw)
	}
	d.Groups[0].Tags[1].Address = 65534 // a float32 ending at the last address fits
	if _, err := resolve(0, d); err != nil {
		t.Errorf("float32 at 65534 refused: %v", err)
	}
	d.UnitID = u8(0) // 0 is a unit id, not "unset"
	if dev, _ := resolve(0, d); dev.groups[0].points[0].unit != 0 {
		t.Errorf("unit_id 0 became %d", dev.groups[0].points[0].unit)
	}
}

// The embedded sample is a valid modbus section, with the defaults it
// claims, so the docs cannot drift.
func TestSampleLoads(t *testing.T) {
	var c struct {
		Modbus Config `yaml:"modbus"`
	}
	if err := pdmconfig.LoadString(Sample, &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Modbus.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Modbus.Devices) != 1 {
		t.Fatalf("%d devices in the sample", len(c.Modbus.Devices))
	}
	d := c.Modbus.Devices[0]
	if d.Timeout != DefaultTimeout || d.ReconnectMax != DefaultReconnectMax || d.MaxGap != DefaultMaxGap ||
		d.MaxRegisters != MaxRegisters || d.MaxBits != MaxBits || *d.UnitID != DefaultUnitID || d.WordOrder != "big" || d.ByteOrder != "big" {
		t.Errorf("sample device settings are not the defaults: %+v", d)
	}
	dev, _ := resolve(0, d)
	var sensors int
	for _, g := range dev.groups {
		sensors += len(g.points)
	}
	if len(dev.groups) != 2 || sensors != 8 {
		t.Errorf("sample: %d groups, %d tags", len(dev.groups), sensors)
	}
}

// The README shows the sample as it is embedded.
func TestReadmeShowsSample(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "```yaml\n"+Sample+"```") {
		t.Error("README.md does not show sample.yaml as it is")
	}
}
