package history

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"time"
)

// Series is the history of one asset: what a model of it learns from.
type Series struct {
	Site, Asset string
	// Step is the distance between rows; From and To the range read, on
	// multiples of Step.
	Step     time.Duration
	From, To time.Time
	// Sensors name the columns of every row.
	Sensors []string
	// Segments are the runs of consecutive rows, in time order.
	Segments []Segment
	// Gaps are the runs of steps with no data, in time order, including
	// any at the start or end of the range.
	Gaps []Gap
	// Excluded are the spans removed as not normal operation, in order of
	// their start.
	Excluded []Exclusion
	// Rows is the number of rows kept (the segments' total), Read the
	// number before exclusions.
	Rows, Read int
	// Present counts, per sensor, the kept rows where it has a value; the
	// other cells are NaN.
	Present []int
	// Hash is the hex SHA-256 of Sensors, row times and values (see
	// HashVersion), for the lineage of a model trained on this data.
	Hash string
}

// HashVersion names the encoding Series.Hash is computed over: the string
// "pdm.history.v1\n", then uint64 little-endian len(Sensors) and each name
// as uint64 length and bytes, then for every row in order its time as int64
// Unix nanoseconds and each value's IEEE-754 bits, all little-endian, every
// NaN as math.NaN()'s bits.
const HashVersion = "pdm.history.v1"

// Segment is a run of rows exactly Step apart.
type Segment struct {
	// Start is the time of the first row.
	Start time.Time
	Step  time.Duration
	// N is the number of rows; Values holds them row-major, N × the
	// number of sensors, sharing the Series' storage.
	N      int
	Values []float64
}

// Len returns the number of rows.
func (s Segment) Len() int { return s.N }

// Time returns the time of row i.
func (s Segment) Time(i int) time.Time { return s.Start.Add(time.Duration(i) * s.Step) }

// End returns the time one step after the last row.
func (s Segment) End() time.Time { return s.Time(s.N) }

// Row returns row i, one value per sensor (not a copy).
func (s Segment) Row(i int) []float64 {
	w := len(s.Values) / s.N
	return s.Values[i*w : (i+1)*w : (i+1)*w]
}

// Gap is a run of steps [From, To) without any reading.
type Gap struct {
	From, To time.Time
	Steps    int
}

// Reason says why a span is not normal operation.
type Reason string

// The reasons a span is excluded.
const (
	// ReasonAlert: an alert of the scorer was open (Exclusion.ID names it).
	ReasonAlert Reason = "alert"
	// ReasonMaintenance: a "maintenance" annotation, or a file's label.
	ReasonMaintenance Reason = "maintenance"
	// ReasonAbnormal: an "abnormal" annotation, or a labelled row of a file.
	ReasonAbnormal Reason = "abnormal"
)

// Exclusion is a span whose rows were removed.
type Exclusion struct {
	// From and To are the step times covered, [From, To): the windows
	// that overlap the padded span, clipped to the range.
	From, To time.Time
	Reason   Reason
	// ID is the alert's id; Note an annotation's note.
	ID, Note string
	// Rows is the number of rows removed by this span and no earlier one,
	// so the rows of all exclusions add up to Read - Rows.
	Rows int
}

// hashSeries returns the hex SHA-256 described at HashVersion.
func hashSeries(sensors []string, segs []Segment) string {
	h := sha256.New()
	buf := make([]byte, 0, 64<<10)
	flush := func() {
		h.Write(buf)
		buf = buf[:0]
	}
	buf = append(buf, HashVersion+"\n"...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(sensors)))
	for _, s := range sensors {
		buf = binary.LittleEndian.AppendUint64(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	nan := math.Float64bits(math.NaN())
	for _, sg := range segs {
		w := len(sensors)
		t, step := sg.Start.UnixNano(), int64(sg.Step)
		for i := range sg.N {
			if len(buf) > cap(buf)-8*(w+1) {
				flush()
			}
			buf = binary.LittleEndian.AppendUint64(buf, uint64(t+int64(i)*step))
			for _, v := range sg.Values[i*w : (i+1)*w] {
				b := math.Float64bits(v)
				if v != v {
					b = nan
				}
				buf = binary.LittleEndian.AppendUint64(buf, b)
			}
		}
	}
	flush()
	return hex.EncodeToString(h.Sum(nil))
}
