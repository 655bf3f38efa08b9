// Package modbus polls Modbus TCP devices (PLCs, gateways, meters) as
// sources of the edge agent: one device is one asset, its register map is
// config, and each poll yields one reading of that asset.
//
// The package has three parts that can be read and tested on their own:
// the register-map config (this file: types, defaults, Validate), a pure
// planner (plan.go) that coalesces the tags of a group into the fewest read
// requests the protocol limits and the configured gap allow, a pure decoder
// (decode.go: int16 … float64 and bits, word and byte order, scale and
// offset), and the Poller (poller.go) that implements source.Source.
//
// Invariants: a value is only ever decoded from the response of a request
// made in the same poll; a sensor whose request failed is left out of the
// reading and counted, never filled in; a poll with no value at all is a
// missed cycle (source.ErrMissed), not an empty reading.
package modbus

import (
	"cmp"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
)

// Sample is the annotated modbus section of the agent's configuration,
// printed (commented out) by edge-agent -print-config.
//
//go:embed sample.yaml
var Sample string

// Defaults of every optional field, in one place.
const (
	DefaultPort         = 502
	DefaultUnitID       = 1
	DefaultTimeout      = time.Second
	DefaultReconnectMax = 10 * time.Second
	DefaultInterval     = time.Second
	DefaultMaxGap       = 0
	// MaxRegisters is the protocol's limit for one read of holding or input
	// registers (function codes 3 and 4), and the default.
	MaxRegisters = 125
	// MaxBits is the protocol's limit for one read of coils or discrete
	// inputs (function codes 1 and 2), and the default.
	MaxBits = 2000
	// MinInterval is the shortest poll interval accepted.
	MinInterval = 10 * time.Millisecond
)

// Config is the modbus section of the edge agent's configuration.
type Config struct {
	// Devices to poll, each published as one asset. Default none.
	Devices []Device `yaml:"devices"`
}

// Device is one Modbus TCP server (a PLC, or a gateway with several units
// behind it) read over one connection, published as one asset.
type Device struct {
	// Asset is the asset id of the device's readings; unique among all the
	// agent's assets. Required.
	Asset string `yaml:"asset"`
	// Address is host[:port] of the Modbus TCP server. Port default 502.
	// Required.
	Address string `yaml:"address"`
	// UnitID is the unit (slave) id of every tag that sets none; gateways
	// route by it, most PLCs ignore it. Default 1.
	UnitID *uint8 `yaml:"unit_id"`
	// Timeout bounds each request and its response; a request that runs
	// past it fails, and the connection is dropped and made again. (Opening
	// the connection has the client library's own bound, 5 s.) Default 1s.
	Timeout time.Duration `yaml:"timeout"`
	// ReconnectMax caps the backoff between connection attempts (jittered,
	// doubling from 100ms). Default 10s.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
	// MaxGap is how many unused registers (or bits) may lie between two
	// tags read in one request. Reading across a gap saves a request, but
	// some devices answer "illegal data address" for an unmapped register,
	// so the default reads nothing that is not mapped. Default 0.
	MaxGap uint16 `yaml:"max_gap"`
	// MaxRegisters is the most registers one read asks for, 1..125; lower
	// it for devices that refuse long reads. Default 125.
	MaxRegisters uint16 `yaml:"max_registers"`
	// MaxBits is the most coils or discrete inputs one read asks for,
	// 1..2000. Default 2000.
	MaxBits uint16 `yaml:"max_bits"`
	// WordOrder of multi-register values for tags that set none: big (the
	// high word in the lower register, "ABCD") or little ("CDAB").
	// Default big.
	WordOrder string `yaml:"word_order"`
	// ByteOrder within each register for tags that set none: big (the
	// protocol's own, "AB") or little (swapped, "BA"). Default big.
	ByteOrder string `yaml:"byte_order"`
	// Groups of tags, each polled on its own interval. At least one.
	Groups []Group `yaml:"groups"`
}

// Group is a set of tags polled together on one interval.
type Group struct {
	// Name identifies the group in logs. Default "group-N" (N from 1).
	Name string `yaml:"name"`
	// Interval between polls, at least 10ms. Default 1s.
	Interval time.Duration `yaml:"interval"`
	// Tags read at each poll. At least one.
	Tags []Tag `yaml:"tags"`
}

// Tag maps one value on the device to one sensor of the reading.
type Tag struct {
	// Sensor is the name of the value in the reading; unique within the
	// device. Required.
	Sensor string `yaml:"sensor"`
	// Table is holding (function code 3), input (4), coil (1) or discrete
	// (2). Default holding.
	Table string `yaml:"table"`
	// Address is the protocol address, counted from 0 in its table: the
	// register documented as 40001 is holding address 0, 30011 is input
	// address 10. Default 0.
	Address uint16 `yaml:"address"`
	// Type of a register value: int16, uint16 (one register), int32,
	// uint32, float32 (two), float64 (four). Coils and discrete inputs are
	// bool and read 0 or 1. Default uint16, or bool for coil and discrete.
	Type string `yaml:"type"`
	// WordOrder, big or little, overrides the device's. Default: the device's.
	WordOrder string `yaml:"word_order"`
	// ByteOrder, big or little, overrides the device's. Default: the device's.
	ByteOrder string `yaml:"byte_order"`
	// Scale multiplies the raw value: value = raw*scale + offset. 0 means 1
	// (a scale of 0 would publish a constant). Default 1.
	Scale float64 `yaml:"scale"`
	// Offset is added after scaling. Default 0.
	Offset float64 `yaml:"offset"`
	// Unit is the engineering unit of the value after scaling (°C, bar,
	// A...), for the people who read the config and the start-up log; the
	// wire carries none. Default "".
	Unit string `yaml:"unit"`
	// UnitID overrides the device's unit id for this tag (a gateway with
	// several units). Default: the device's.
	UnitID *uint8 `yaml:"unit_id"`
}

// table is a Modbus data table.
type table uint8

const (
	holding table = iota
	input
	coil
	discrete
)

var tableNames = map[string]table{"holding": holding, "input": input, "coil": coil, "discrete": discrete}

func (t table) String() string {
	return [...]string{"holding", "input", "coil", "discrete"}[t]
}

// bits reports whether the table holds single bits rather than registers.
func (t table) bits() bool { return t == coil || t == discrete }

// valueType is how a tag's registers are read as a number.
type valueType uint8

const (
	typeUint16 valueType = iota
	typeInt16
	typeUint32
	typeInt32
	typeFloat32
	typeFloat64
	typeBool
)

var typeNames = map[string]valueType{
	"uint16": typeUint16, "int16": typeInt16, "uint32": typeUint32, "int32": typeInt32,
	"float32": typeFloat32, "float64": typeFloat64, "bool": typeBool,
}

func (v valueType) String() string {
	return [...]string{"uint16", "int16", "uint32", "int32", "float32", "float64", "bool"}[v]
}

// size is how many registers (or bits, for bool) a value occupies.
func (v valueType) size() int {
	switch v {
	case typeUint32, typeInt32, typeFloat32:
		return 2
	case typeFloat64:
		return 4
	}
	return 1
}

// point is a tag with every default resolved: what the planner and the
// decoder work on.
type point struct {
	sensor string
	unit   uint8
	table  table
	addr   uint16
	typ    valueType
	// wordLittle: the lowest register holds the least significant word.
	// byteLittle: the first byte of each register is its low byte.
	wordLittle, byteLittle bool
	scale, offset          float64
	eng                    string // engineering unit, for logs
}

// size is the number of registers or bits p occupies.
func (p point) size() int { return p.typ.size() }

// device is a Device with every default resolved.
type device struct {
	asset, addr  string
	timeout      time.Duration
	reconnectMax time.Duration
	limits       limits
	groups       []groupSpec
}

type groupSpec struct {
	name     string
	interval time.Duration
	points   []point
}

// Assets lists the asset ids of the devices, in config order.
func (c *Config) Assets() []string {
	var out []string
	for _, d := range c.Devices {
		out = append(out, d.Asset)
	}
	return out
}

// Validate rejects bad register maps; each message names the device, group
// and tag it is about and the values at fault.
func (c *Config) Validate() error {
	var errs []error
	seen := map[string]int{}
	for i, d := range c.Devices {
		if j, dup := seen[d.Asset]; dup && d.Asset != "" {
			errs = append(errs, fmt.Errorf("devices[%d] asset (%q) is also the asset of devices[%d]", i, d.Asset, j))
		}
		seen[d.Asset] = i
		if _, err := resolve(i, d); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// resolve applies the defaults to d (devices[i]) and checks it.
func resolve(i int, d Device) (device, error) {
	var errs []error
	name := fmt.Sprintf("devices[%d]", i)
	if d.Asset != "" {
		name = fmt.Sprintf("device %q", d.Asset)
	}
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf(name+": "+format, args...))
	}
	out := device{asset: d.Asset, timeout: d.Timeout, reconnectMax: d.ReconnectMax,
		limits: limits{maxRegs: int(d.MaxRegisters), maxBits: int(d.MaxBits), maxGap: int(d.MaxGap)}}
	if !wire.ValidID(d.Asset) {
		add("asset (%q) must be 1..%d characters of [A-Za-z0-9._-]", d.Asset, wire.MaxIDLen)
	}
	addr, err := hostPort(d.Address)
	if err != nil {
		add("address (%q): %v", d.Address, err)
	}
	out.addr = addr
	unit := uint8(DefaultUnitID)
	if d.UnitID != nil {
		unit = *d.UnitID
	}
	if out.timeout == 0 {
		out.timeout = DefaultTimeout
	}
	if out.timeout < 0 {
		add("timeout (%s) must be > 0", d.Timeout)
	}
	if out.reconnectMax == 0 {
		out.reconnectMax = DefaultReconnectMax
	}
	if out.reconnectMax < 0 {
		add("reconnect_max (%s) must be > 0", d.ReconnectMax)
	}
	if out.limits.maxRegs == 0 {
		out.limits.maxRegs = MaxRegisters
	}
	if out.limits.maxRegs > MaxRegisters {
		add("max_registers (%d) must be 1..%d", d.MaxRegisters, MaxRegisters)
	}
	if out.limits.maxBits == 0 {
		out.limits.maxBits = MaxBits
	}
	if out.limits.maxBits > MaxBits {
		add("max_bits (%d) must be 1..%d", d.MaxBits, MaxBits)
	}
	wordOrder, err := order(d.WordOrder)
	if err != nil {
		add("word_order (%q): %v", d.WordOrder, err)
	}
	byteOrder, err := order(d.ByteOrder)
	if err != nil {
		add("byte_order (%q): %v", d.ByteOrder, err)
	}
	if len(d.Groups) == 0 {
		add("no groups: give at least one group of tags")
	}
	sensors := map[string]string{} // sensor → group that has it
	groups := map[string]bool{}
	for gi, g := range d.Groups {
		gs := groupSpec{name: g.Name, interval: g.Interval}
		if gs.name == "" {
			gs.name = "group-" + strconv.Itoa(gi+1)
		}
		gname := fmt.Sprintf("group %q", gs.name)
		if groups[gs.name] {
			add("%s: name used twice", gname)
		}
		groups[gs.name] = true
		if gs.interval == 0 {
			gs.interval = DefaultInterval
		}
		if gs.interval < MinInterval {
			add("%s: interval (%s) must be at least %s", gname, g.Interval, MinInterval)
		}
		if len(g.Tags) == 0 {
			add("%s: no tags", gname)
		}
		for ti, t := range g.Tags {
			tname := fmt.Sprintf("%s tags[%d]", gname, ti)
			if t.Sensor != "" {
				tname = fmt.Sprintf("%s tag %q", gname, t.Sensor)
			}
			p := point{sensor: t.Sensor, unit: unit, addr: t.Address, scale: t.Scale, offset: t.Offset, eng: t.Unit,
				wordLittle: wordOrder, byteLittle: byteOrder}
			if t.UnitID != nil {
				p.unit = *t.UnitID
			}
			if err := validSensor(t.Sensor); err != nil {
				add("%s: sensor (%q): %v", tname, t.Sensor, err)
			} else if other, dup := sensors[t.Sensor]; dup {
				add("%s: sensor (%q) is also in group %q", tname, t.Sensor, other)
			} else {
				sensors[t.Sensor] = gs.name
			}
			tb, ok := tableNames[cmp.Or(t.Table, "holding")]
			if !ok {
				add("%s: table (%q): want holding, input, coil or discrete", tname, t.Table)
			}
			p.table = tb
			def := "uint16"
			if tb.bits() {
				def = "bool"
			}
			typ, ok := typeNames[cmp.Or(t.Type, def)]
			switch {
			case !ok:
				add("%s: type (%q): want int16, uint16, int32, uint32, float32, float64 or bool", tname, t.Type)
			case tb.bits() && typ != typeBool:
				add("%s: type (%q) with table (%q): coils and discrete inputs are bool", tname, t.Type, t.Table)
			case !tb.bits() && typ == typeBool:
				add("%s: type (%q) with table (%q): bool is for coil or discrete; registers are int16 … float64", tname, t.Type, cmp.Or(t.Table, "holding"))
			}
			p.typ = typ
			if t.WordOrder != "" {
				if p.wordLittle, err = order(t.WordOrder); err != nil {
					add("%s: word_order (%q): %v", tname, t.WordOrder, err)
				}
			}
			if t.ByteOrder != "" {
				if p.byteLittle, err = order(t.ByteOrder); err != nil {
					add("%s: byte_order (%q): %v", tname, t.ByteOrder, err)
				}
			}
			if p.scale == 0 {
				p.scale = 1
			}
			if math.IsNaN(p.scale) || math.IsInf(p.scale, 0) || math.IsNaN(p.offset) || math.IsInf(p.offset, 0) {
				add("%s: scale (%v) and offset (%v) must be finite", tname, t.Scale, t.Offset)
			}
			if end := int(p.addr) + p.size() - 1; end > 0xffff {
				add("%s: address (%d) with type %s ends at %d, past the last address 65535", tname, t.Address, typ, end)
			}
			if !tb.bits() && p.size() > out.limits.maxRegs && out.limits.maxRegs <= MaxRegisters {
				add("%s: type %s takes %d registers, more than max_registers (%d)", tname, typ, p.size(), out.limits.maxRegs)
			}
			gs.points = append(gs.points, p)
		}
		out.groups = append(out.groups, gs)
	}
	if n, limit := len(sensors), wire.DefaultLimits().MaxSensors; n > limit {
		add("%d sensors, more than a reading may hold (%d)", n, limit)
	}
	return out, errors.Join(errs...)
}

// validSensor asks the wire's own validation whether name can be a sensor,
// so the rule has one owner.
func validSensor(name string) error {
	if name == "" {
		return errors.New("required")
	}
	now := time.Now()
	r := wire.Reading{Site: "s", Asset: "a", Seq: 1, Time: now, Sensors: map[string]float64{name: 0}}
	return wire.DefaultLimits().Validate(&r, now)
}

func hostPort(s string) (string, error) {
	if s == "" {
		return "", errors.New("required: host[:port] of the Modbus TCP server")
	}
	if strings.Contains(s, "://") {
		return "", errors.New("want host[:port] without a scheme")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		// No port: the default, unless it is malformed some other way.
		if _, _, err2 := net.SplitHostPort(s + ":" + strconv.Itoa(DefaultPort)); err2 != nil {
			return "", fmt.Errorf("want host[:port]: %v", err)
		}
		return net.JoinHostPort(strings.Trim(s, "[]"), strconv.Itoa(DefaultPort)), nil
	}
	if host == "" {
		return "", errors.New("host missing")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("port %q: want 1..65535", port)
	}
	return s, nil
}

// order reads "big" or "little" (empty: big) as little.
func order(s string) (bool, error) {
	switch s {
	case "", "big":
		return false, nil
	case "little":
		return true, nil
	}
	return false, errors.New("want big or little")
}
