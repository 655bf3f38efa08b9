package wire

import (
	"math"
	"strconv"
	"time"
	"unsafe"
)

// decodeFast decodes the common shape of a message without reflection: a
// single reading or a batch, every key one of the schema's, spelled exactly,
// once; strings plain ASCII without escapes; sensor values plain numbers.
// Anything else — escapes, unknown or repeated keys, nulls, wrong types,
// malformed JSON — returns ok=false, and Decode falls back to encoding/json,
// which then decides. So the fast path only ever agrees with decodeStd, which
// FuzzFastMatchesStd checks.
//
// With aliased set (Check) it builds no sensor maps and its strings alias
// payload: sensors are checked in place, and any sensor problem returns
// ok=false so that the full decoder words the error.
func (l Limits) decodeFast(payload []byte, now time.Time, aliased bool) (items []Item, err error, ok bool) {
	s := scanner{b: payload}
	if aliased {
		s.maxSensors = l.MaxSensors
	}
	var top readingJSON
	var raws [][]byte
	var elems []readingJSON
	isBatch := false
	if !s.reading(&top, func() bool {
		isBatch = true
		if !s.eat('[') {
			return false
		}
		if s.eat(']') {
			return true
		}
		for {
			s.ws()
			start := s.i
			var j readingJSON
			if !s.reading(&j, nil) {
				return false
			}
			raws = append(raws, s.b[start:s.i])
			elems = append(elems, j)
			if s.eat(',') {
				continue
			}
			return s.eat(']')
		}
	}) {
		return nil, nil, false
	}
	if s.ws(); s.i != len(s.b) {
		return nil, nil, false // trailing data: encoding/json names the error
	}
	if top.V != Version {
		return nil, reject(ErrVersion, -1, "v=%d (want %d)", top.V, Version), true
	}
	if !isBatch {
		item := Item{Raw: payload}
		item.Reading, item.Err = l.fromJSON(payload, &top, nil, now, -1)
		return []Item{item}, nil, true
	}
	if len(elems) == 0 || len(elems) > l.MaxBatch {
		return nil, reject(ErrBatchSize, -1, "%d readings (limit 1..%d)", len(elems), l.MaxBatch), true
	}
	items = make([]Item, len(elems))
	for i := range elems {
		var verr error
		if elems[i].V != Version {
			verr = reject(ErrVersion, i, "v=%d (want %d)", elems[i].V, Version)
		}
		items[i].Raw = raws[i]
		items[i].Reading, items[i].Err = l.fromJSON(raws[i], &elems[i], verr, now, i)
	}
	return items, nil, true
}

// scanner reads the JSON subset decodeFast accepts; every method returns
// false where encoding/json should decide instead.
type scanner struct {
	b []byte
	i int
	// maxSensors, when not 0, makes reading check sensors in place instead
	// of building a map, and alias strings instead of copying them.
	maxSensors int
}

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) eat(c byte) bool {
	s.ws()
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// str reads a string of printable ASCII without escapes, which encoding/json
// would decode to the same bytes.
func (s *scanner) str() ([]byte, bool) {
	if !s.eat('"') {
		return nil, false
	}
	start := s.i
	for ; s.i < len(s.b); s.i++ {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x80 || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// num reads a number token by the JSON grammar; integer reports whether it
// has neither fraction nor exponent.
func (s *scanner) num() (tok []byte, integer, ok bool) {
	s.ws()
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch {
	case s.peek() == '0':
		s.i++
	case isDigit(s.peek()):
		for isDigit(s.peek()) {
			s.i++
		}
	default:
		return nil, false, false
	}
	integer = true
	if s.peek() == '.' {
		integer = false
		s.i++
		if !isDigit(s.peek()) {
			return nil, false, false
		}
		for isDigit(s.peek()) {
			s.i++
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		integer = false
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !isDigit(s.peek()) {
			return nil, false, false
		}
		for isDigit(s.peek()) {
			s.i++
		}
	}
	return s.b[start:s.i], integer, true
}

// object reads {"key": value, ...}, calling field after each key and its
// colon; field reads the value.
func (s *scanner) object(field func(key []byte) bool) bool {
	if !s.eat('{') {
		return false
	}
	if s.eat('}') {
		return true
	}
	for {
		k, ok := s.str()
		if !ok || !s.eat(':') || !field(k) {
			return false
		}
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// reading reads one reading object into j. readings, when not nil, reads
// the value of a "readings" key (top level only).
func (s *scanner) reading(j *readingJSON, readings func() bool) bool {
	var seen uint8
	return s.object(func(k []byte) bool {
		var bit uint8
		switch string(k) {
		case "v":
			bit = 1
			tok, integer, ok := s.num()
			if !ok || !integer {
				return false
			}
			v, err := strconv.Atoi(unsafeString(tok))
			if err != nil {
				return false
			}
			j.V = v
		case "site", "asset", "ts":
			v, ok := s.str()
			if !ok {
				return false
			}
			str := unsafeString(v)
			if k[0] != 't' && s.maxSensors == 0 {
				str = string(v)
			}
			switch k[0] {
			case 's':
				bit, j.Site = 2, str
			case 'a':
				bit, j.Asset = 4, str
			default:
				bit, j.TS = 8, str // only parsed, never kept
			}
		case "seq":
			bit = 16
			tok, integer, ok := s.num()
			if !ok || !integer || tok[0] == '-' {
				return false
			}
			v, err := strconv.ParseUint(unsafeString(tok), 10, 64)
			if err != nil {
				return false
			}
			j.Seq = v
		case "sensors":
			bit = 32
			if s.maxSensors > 0 {
				if !s.checkSensors() {
					return false
				}
				j.sensorsChecked = true
				break
			}
			j.Sensors = make(map[string]float64, 8)
			n := 0
			if !s.object(func(name []byte) bool {
				tok, _, ok := s.num()
				if !ok {
					return false
				}
				f, err := strconv.ParseFloat(unsafeString(tok), 64)
				if err != nil {
					return false
				}
				j.Sensors[string(name)] = f
				n++
				return true
			}) || n != len(j.Sensors) { // a repeated name: decodeStd words it
				return false
			}
		case "quality":
			bit = 128
			if s.maxSensors > 0 {
				// Check: marks are validated against the sensor map, which
				// the in-place check does not build; the full decoder does.
				return false
			}
			j.Quality = make(map[string]string, 2)
			n := 0
			if !s.object(func(name []byte) bool {
				mark, ok := s.str()
				if ok {
					j.Quality[string(name)] = string(mark)
					n++
				}
				return ok
			}) || n != len(j.Quality) {
				return false
			}
		case "readings":
			if readings == nil {
				return false
			}
			bit = 64
			if !readings() {
				return false
			}
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		return true
	})
}

// checkSensors reads a sensors object that needs no map to be valid: 1 to
// maxSensors entries, every name a valid, unreserved ID given once, every
// value finite. Names are compared pairwise, which is cheaper than a map
// for the few sensors of a reading; past checkedNames of them it leaves
// the verdict to the full decoder.
func (s *scanner) checkSensors() bool {
	const checkedNames = 64
	var names [checkedNames][]byte
	n := 0
	return s.object(func(name []byte) bool {
		tok, _, ok := s.num()
		if !ok || !finite(tok) || n >= min(s.maxSensors, checkedNames) || !ValidID(unsafeString(name)) || reservedSensors[string(name)] {
			return false
		}
		for _, seen := range names[:n] {
			if string(seen) == string(name) {
				return false
			}
		}
		names[n] = name
		n++
		return true
	}) && n > 0
}

// finite reports whether a JSON number token is a finite float64. Without
// an exponent, fewer than 300 characters cannot reach the largest float64
// (about 1.8e308), so only the rest are parsed.
func finite(tok []byte) bool {
	exponent := len(tok) >= 300
	for _, c := range tok {
		exponent = exponent || c == 'e' || c == 'E'
	}
	if !exponent {
		return true
	}
	f, err := strconv.ParseFloat(unsafeString(tok), 64)
	return err == nil && !math.IsInf(f, 0)
}

// unsafeString views b as a string for parsing only; strconv copies what it
// keeps in its errors.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
