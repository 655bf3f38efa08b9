package history

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

var (
	// ErrNoData means the read found no rows to learn from: nothing stored
	// in the range, or all of it excluded. Read returns it as a *NoDataError.
	ErrNoData = errors.New("history: no data")

	// ErrRejected means InfluxDB refused a query (unknown bucket or
	// database, bad query, no permission); retrying cannot help.
	ErrRejected = errors.New("history: influxdb refused the query")

	// ErrUnavailable means InfluxDB did not answer within Config.RetryFor.
	ErrUnavailable = errors.New("history: influxdb unavailable")

	// ErrInput marks a problem with an input file, as opposed to an I/O error.
	ErrInput = errors.New("history: bad input")
)

// NoDataError says which read came back empty and why, so the trainer can
// tell an operator what to fix (the range, the asset names, the exclusions).
type NoDataError struct {
	Site     string
	Assets   []string
	From, To time.Time
	// Read is the number of rows read before exclusions, Excluded how many
	// of them the exclusions removed (all of them when Read > 0).
	Read, Excluded int
}

func (e *NoDataError) Error() string {
	what := fmt.Sprintf("site %s, assets %s, %s to %s", e.Site, strings.Join(e.Assets, ","), e.From.UTC().Format(time.RFC3339), e.To.UTC().Format(time.RFC3339))
	if e.Read == 0 {
		return "history: no data: no readings stored for " + what
	}
	return fmt.Sprintf("history: no data: all %d rows excluded (alerts or annotations) for %s", e.Read, what)
}

// Is makes errors.Is(err, ErrNoData) true.
func (e *NoDataError) Is(target error) bool { return target == ErrNoData }
