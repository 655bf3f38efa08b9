package history

import (
	"testing"
	"time"
)

// TestNewNormalAlertsExcludeNothing: an alert the scorer resolved as the
// new normal, or an operator did, covered normal operation.
func TestNewNormalAlertsExcludeNothing(t *testing.T) {
	ms := int64(time.Millisecond)
	events := []alertEvent{
		{asset: "a", id: "x", state: "opened", at: 100 * ms},
		{asset: "a", id: "x", state: "resolved", at: 200 * ms, resolution: "new_normal"},
		{asset: "a", id: "y", state: "opened", at: 300 * ms},
		{asset: "a", id: "y", state: "resolved", at: 400 * ms, resolution: "operator"},
		{asset: "a", id: "z", state: "opened", at: 500 * ms},
		{asset: "a", id: "z", state: "resolved", at: 600 * ms, resolution: "recovered"},
	}
	got := alertExclusions(events, 0, 1000*ms)
	if len(got) != 1 || got[0].ID != "z" {
		t.Fatalf("exclusions %+v, want only the recovered alert z", got)
	}
}
