package api

import (
	"errors"
	"net/http"

	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := alertview.Filter{Asset: q.Get("asset"), Open: q.Get("state") == "open"}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": a.alerts.List(f)})
}

type ackBody struct {
	By string `json:"by"`
	// Reason is what the operator says; "new_normal" means the asset's
	// current behaviour is normal: the alert resolves and the asset is
	// re-baselined at once.
	Reason string `json:"reason"`
}

func (a *API) ack(w http.ResponseWriter, r *http.Request) {
	var b ackBody
	if !decodeBody(w, r, 4096, &b, `{"by": "<who>"} or {"by": "<who>", "reason": "new_normal"}`) {
		return
	}
	if b.By == "" {
		writeError(w, http.StatusBadRequest, `"by" (who acknowledges) is required`)
		return
	}
	al, queued, err := a.alerts.Ack(r.Context(), r.PathValue("id"), b.By, b.Reason)
	switch {
	case errors.Is(err, stream.ErrAlertNotHere), errors.Is(err, alertview.ErrUnknown):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case queued:
		// Another instance owns the asset; it applies the request.
		a.log.Info("alert acknowledgement forwarded", "id", al.ID, "asset", al.Asset, "by", b.By, "reason", b.Reason)
		writeJSON(w, http.StatusAccepted, al)
		return
	}
	a.log.Info("alert acknowledged", "id", al.ID, "asset", al.Asset, "by", b.By, "reason", b.Reason)
	writeJSON(w, http.StatusOK, al)
}
