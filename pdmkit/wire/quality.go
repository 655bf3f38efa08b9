package wire

import (
	"fmt"
	"strings"
)

// Quality classes. Every quality mark is one of these words or starts with
// one (case aside), so a consumer can act on the class and still show the
// source's own status: "bad", "BadSensorFailure" (an OPC UA status name),
// "uncertain", "UncertainLastUsableValue", "stale".
const (
	// QualityBad: the source reported no usable value. The sensor is left
	// out of Sensors; a value is never invented for it.
	QualityBad = "bad"
	// QualityUncertain: the source sent a value of doubtful quality. It is
	// kept in Sensors.
	QualityUncertain = "uncertain"
	// QualityStale: the value is the last one the source sent, held longer
	// than the source's staleness limit. It is kept in Sensors.
	QualityStale = "stale"
)

// QualityClass returns the class of a quality mark — QualityBad,
// QualityUncertain or QualityStale — or "" when mark is not a valid ID
// starting with one of them.
func QualityClass(mark string) string {
	if !ValidID(mark) {
		return ""
	}
	for _, c := range [...]string{QualityBad, QualityUncertain, QualityStale} {
		if len(mark) >= len(c) && strings.EqualFold(mark[:len(c)], c) {
			return c
		}
	}
	return ""
}

// validateQuality checks the quality marks against the sensor map: at most
// MaxSensors marks, each on a valid sensor name, of a known class, a bad
// one on a sensor without a value and any other on a sensor with one.
func (l Limits) validateQuality(sensors map[string]float64, quality map[string]string, index int) error {
	if len(quality) == 0 {
		return nil
	}
	if len(quality) > l.MaxSensors {
		return reject(ErrQuality, index, "%d quality marks (limit %d)", len(quality), l.MaxSensors)
	}
	// The first bad mark in name order, so the same reading always gets the
	// same error.
	bad, found := "", false
	for name, mark := range quality {
		if qualityProblem(name, mark, sensors) != "" && (!found || name < bad) {
			bad, found = name, true
		}
	}
	if !found {
		return nil
	}
	return reject(ErrQuality, index, "%s", qualityProblem(bad, quality[bad], sensors))
}

// qualityProblem says what is wrong with one mark, or "" when nothing is.
func qualityProblem(name, mark string, sensors map[string]float64) string {
	_, has := sensors[name]
	switch class := QualityClass(mark); {
	case !ValidID(name) || reservedSensors[name]:
		return fmt.Sprintf("quality mark on sensor name %q", clip(name))
	case class == "":
		return fmt.Sprintf("sensor %q quality %q: want bad, uncertain or stale, or a name starting with one", name, clip(mark))
	case class == QualityBad && has:
		return fmt.Sprintf("sensor %q is marked %q but has a value", name, mark)
	case class != QualityBad && !has:
		return fmt.Sprintf("sensor %q is marked %q but has no value", name, mark)
	}
	return ""
}

// nilIfEmpty makes an empty quality map nil, so "quality":{} and no
// quality decode alike and a decoded reading encodes to the same bytes.
func nilIfEmpty(q map[string]string) map[string]string {
	if len(q) == 0 {
		return nil
	}
	return q
}
