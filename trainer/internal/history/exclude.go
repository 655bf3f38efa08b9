package history

import (
	"slices"
	"time"
)

// alertEvent is one point of the measurement "alerts": an alert opened,
// updated or resolved at the time of the reading that caused the event.
type alertEvent struct {
	asset, id, state string
	at               int64 // Unix ns
	// firstMs is the Unix ms of the first reading of the excursion, when
	// the scorer recorded it (0 = absent).
	firstMs int64
	// resolution is why a resolved alert ended (pdmkit/alert).
	resolution string
}

// annotation is one point of the measurement "annotations": a span an
// operator or a labelling tool marked as not normal operation.
type annotation struct {
	asset, kind, note string
	start             int64 // Unix ns (the point's time)
	endMs             int64 // Unix ms; 0 = still open
}

// alertExclusions turns alert events into the spans they exclude, in real
// time (unpadded), one per alert id:
//
//   - it starts at the excursion's first reading (first_ms of any event),
//     else at the opened event; with neither in sight (opened before the
//     lookback) it is taken to have begun before the range, at from;
//   - it ends at the resolved event, or at to when none came before to.
//
// An alert resolved as the new normal (the scorer learnt the excursion as
// a new operating point) or by an operator's "this is the new normal"
// excludes nothing: its span is normal operation, and exactly what a
// model trained after it should learn.
//
// Spans outside the range are dropped by builder.exclude, after padding.
func alertExclusions(events []alertEvent, from, to int64) []Exclusion {
	type acc struct {
		start, end  int64
		first, open int64
		resolved    bool
		normal      bool
		order       int
	}
	byID := map[string]*acc{}
	var ids []string
	for _, e := range events {
		a := byID[e.id]
		if a == nil {
			a = &acc{order: len(ids)}
			byID[e.id] = a
			ids = append(ids, e.id)
		}
		if f := e.firstMs * int64(time.Millisecond); e.firstMs != 0 && (a.first == 0 || f < a.first) {
			a.first = f
		}
		switch e.state {
		case "opened":
			if a.open == 0 || e.at < a.open {
				a.open = e.at
			}
		case "resolved":
			if !a.resolved || e.at < a.end {
				a.end, a.resolved = e.at, true
			}
			a.normal = a.normal || e.resolution == "new_normal" || e.resolution == "operator"
		}
	}
	var out []Exclusion
	for _, id := range ids {
		a := byID[id]
		if a.normal {
			continue
		}
		start := from
		switch {
		case a.first != 0:
			start = a.first
		case a.open != 0:
			start = a.open
		}
		end := to
		if a.resolved {
			end = a.end
		}
		out = append(out, Exclusion{From: unixTime(start), To: unixTime(end), Reason: ReasonAlert, ID: id})
	}
	return out
}

// annotationExclusions turns annotations into spans: [start, end_ms), or to
// the range end when end_ms is absent (work still under way). Kinds other
// than maintenance and abnormal, and spans ending before they start, are
// left out and returned in ignored for the caller to log.
func annotationExclusions(anns []annotation, to int64) (out []Exclusion, ignored []annotation) {
	for _, a := range anns {
		r := Reason(a.kind)
		if r != ReasonMaintenance && r != ReasonAbnormal {
			ignored = append(ignored, a)
			continue
		}
		end := to
		if a.endMs != 0 {
			end = a.endMs * int64(time.Millisecond)
		}
		if end < a.start {
			ignored = append(ignored, a)
			continue
		}
		out = append(out, Exclusion{From: unixTime(a.start), To: unixTime(end), Reason: r, Note: a.note})
	}
	slices.SortStableFunc(out, func(x, y Exclusion) int { return x.From.Compare(y.From) })
	return out, ignored
}
