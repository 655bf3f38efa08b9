package history

import (
	"fmt"
	"strings"
	"time"
)

// The Flux here sticks to what InfluxDB 1.8's Flux (0.65) has: from, range,
// filter, aggregateWindow (with timeSrc), drop, pivot. No "types", "schema"
// or "experimental" imports, so the same text runs on 1.8 and 2.x.

// rangeFlux is the range [from, to). InfluxDB 1.8 returns points at the
// stop time too (its storage read includes the end), which would put the
// first point of the next chunk into this one, so the stop is one
// nanosecond earlier: exact on 1.8, and on 2.x it only leaves out a point
// stored at to-1ns, which millisecond-precision readings never are.
func rangeFlux(from, to int64) string {
	return fmt.Sprintf("  |> range(start: %s, stop: %s)\n", fluxTime(from), fluxTime(to-1))
}

// readingsFlux reads [from, to) of the readings of assets at one site,
// one row per asset and time. Without sensors it takes every field but
// seq; the pivot makes one column per field present in the chunk. Columns
// the reader does not use are dropped before the pivot, so InfluxDB
// neither pivots nor sends them.
//
// With step > 0 each window [t, t+step) is reduced to its mean on the
// server and labelled t (timeSrc "_start", so windows line up with the
// step grid). With step 0 the points come as stored, for the reader to
// average (ResampleReader).
func readingsFlux(bucket, site string, assets, sensors []string, from, to int64, step time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "from(bucket: %s)\n", fluxString(bucket))
	b.WriteString(rangeFlux(from, to))
	fmt.Fprintf(&b, "  |> filter(fn: (r) => r._measurement == \"readings\" and r.site == %s and (%s))\n", fluxString(site), fluxAny("asset", assets))
	if len(sensors) > 0 {
		fmt.Fprintf(&b, "  |> filter(fn: (r) => %s)\n", fluxAny("_field", sensors))
	} else {
		b.WriteString("  |> filter(fn: (r) => r._field != \"seq\")\n")
	}
	if step > 0 {
		fmt.Fprintf(&b, "  |> aggregateWindow(every: %s, fn: mean, createEmpty: false, timeSrc: \"_start\")\n", fluxDuration(step))
	}
	b.WriteString("  |> drop(columns: [\"_start\", \"_stop\", \"_measurement\", \"site\"])\n")
	b.WriteString("  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n")
	return b.String()
}

// eventsFlux reads the points of measurement (alerts or annotations) of
// assets at one site in [from, to) with the given fields, one row per
// series and time.
func eventsFlux(bucket, measurement, site string, assets, fields []string, from, to int64) string {
	var b strings.Builder
	fmt.Fprintf(&b, "from(bucket: %s)\n", fluxString(bucket))
	b.WriteString(rangeFlux(from, to))
	fmt.Fprintf(&b, "  |> filter(fn: (r) => r._measurement == %s and r.site == %s and (%s) and (%s))\n",
		fluxString(measurement), fluxString(site), fluxAny("asset", assets), fluxAny("_field", fields))
	b.WriteString("  |> pivot(rowKey: [\"_time\"], columnKey: [\"_field\"], valueColumn: \"_value\")\n")
	return b.String()
}

// fluxAny is "r.col == v1 or r.col == v2 ...".
func fluxAny(col string, values []string) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = "r." + col + " == " + fluxString(v)
	}
	return strings.Join(parts, " or ")
}

// fluxString quotes s as a Flux string literal; "$" is escaped because
// "${" starts an interpolation.
func fluxString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, `$`, `\$`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(s) + `"`
}

func fluxTime(ns int64) string { return unixTime(ns).Format(time.RFC3339Nano) }

// fluxDuration writes d in the largest unit that holds it exactly.
func fluxDuration(d time.Duration) string {
	switch {
	case d%time.Second == 0:
		return fmt.Sprintf("%ds", d/time.Second)
	case d%time.Millisecond == 0:
		return fmt.Sprintf("%dms", d/time.Millisecond)
	case d%time.Microsecond == 0:
		return fmt.Sprintf("%dus", d/time.Microsecond)
	}
	return fmt.Sprintf("%dns", int64(d))
}
