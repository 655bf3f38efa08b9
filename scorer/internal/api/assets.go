package api

import (
	"net/http"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"
	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/fleet"
	"github.com/pdmstream/pdm/scorer/internal/registry"
)

// Fleet is what the API needs of the fleet view.
type Fleet interface {
	List() []fleet.Asset
	Get(asset string) (fleet.Asset, []fleet.Point, bool)
}

// Asset states of GET /v1/assets.
const (
	StateNormal    = "normal"
	StateWarmingUp = "warming_up"
	StateAlert     = "alert"
	// StateStale: nothing was scored for the asset for Options.StaleAfter,
	// or its gateway's retained status says offline.
	StateStale = "stale"
)

// openAlert is the asset's open alert in the fleet list.
type openAlert struct {
	ID       string         `json:"id"`
	Severity alert.Severity `json:"severity"`
	Acked    bool           `json:"acked"`
}

type assetView struct {
	fleet.Asset
	State string `json:"state"`
	Stale bool   `json:"stale"`
	// StaleReason is "no_readings" (nothing scored for StaleAfter) or
	// "gateway_offline" (the gateway's retained status says offline).
	StaleReason string     `json:"stale_reason,omitempty"`
	Open        *openAlert `json:"open_alert,omitempty"`
	// Binding is the version that scores the asset's next reading.
	Binding binding `json:"binding"`
}

// binding is the model version the registry binds to an asset now, which
// may be newer than the version of its latest score.
type binding struct {
	Model   string `json:"model,omitempty"`
	Version string `json:"version,omitempty"`
	Pinned  bool   `json:"pinned"`
	Shadow  string `json:"shadow_version,omitempty"`
}

type assetDetail struct {
	assetView
	History []fleet.Point `json:"history"`
	Alerts  []alert.Alert `json:"alerts"`
}

func (a *API) view(x fleet.Asset, open map[string]*alert.Alert, pins map[string]registry.Pin, now time.Time) assetView {
	v := assetView{Asset: x, State: StateNormal}
	b := a.reg.Resolve(x.Site, x.Asset)
	if b.Active != nil {
		v.Binding.Model, v.Binding.Version = b.Active.Name, b.Active.Version
	}
	if b.Shadow != nil {
		v.Binding.Shadow = b.Shadow.Version
	}
	_, v.Binding.Pinned = pins[x.Asset]
	if al := open[x.Asset]; al != nil {
		v.Open = &openAlert{ID: al.ID, Severity: al.Severity, Acked: al.Acked}
	}
	switch {
	case x.GatewayStatus == fleet.Offline:
		v.Stale, v.StaleReason = true, "gateway_offline"
	case now.Sub(x.LastSeen) > a.opt.StaleAfter:
		v.Stale, v.StaleReason = true, "no_readings"
	}
	switch {
	case v.Stale:
		v.State = StateStale
	case v.Open != nil:
		v.State = StateAlert
	case x.WarmingUp:
		v.State = StateWarmingUp
	}
	return v
}

// openByAsset maps each asset to its open alert, the latest when several.
func (a *API) openByAsset() map[string]*alert.Alert {
	open := map[string]*alert.Alert{}
	for _, al := range a.alerts.List(alertview.Filter{Open: true}) {
		if open[al.Asset] == nil { // List is latest first
			open[al.Asset] = &al
		}
	}
	return open
}

func (a *API) listAssets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	site, state := q.Get("site"), q.Get("state")
	switch state {
	case "", StateNormal, StateWarmingUp, StateAlert, StateStale:
	default:
		writeError(w, http.StatusBadRequest, "state ("+state+") must be one of normal, warming_up, alert, stale")
		return
	}
	out := []assetView{}
	if a.opt.Fleet != nil {
		open, pins, now := a.openByAsset(), a.reg.Control().Pins, time.Now()
		for _, x := range a.opt.Fleet.List() {
			v := a.view(x, open, pins, now)
			if (site == "" || v.Site == site) && (state == "" || v.State == state) {
				out = append(out, v)
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"assets": out, "stale_after_seconds": a.opt.StaleAfter.Seconds()})
}

func (a *API) getAsset(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("asset")
	if a.opt.Fleet == nil {
		writeError(w, http.StatusNotFound, "asset "+id+" has no score in the fleet view")
		return
	}
	x, hist, ok := a.opt.Fleet.Get(id)
	if !ok {
		writeError(w, http.StatusNotFound, "asset "+id+" has no score in the fleet view")
		return
	}
	d := assetDetail{assetView: a.view(x, a.openByAsset(), a.reg.Control().Pins, time.Now()), History: hist,
		Alerts: a.alerts.List(alertview.Filter{Asset: id})}
	writeJSON(w, http.StatusOK, d)
}
