package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/pdmstream/pdm/pdmkit/alert"

	"github.com/pdmstream/pdm/scorer/internal/alertview"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// alertFilter reads the filter of the alert list and its event stream.
func alertFilter(w http.ResponseWriter, r *http.Request) (alertview.Filter, bool) {
	q := r.URL.Query()
	f := alertview.Filter{Asset: q.Get("asset"), Site: q.Get("site"), Open: q.Get("state") == "open", Severity: alert.Severity(q.Get("severity"))}
	switch f.Severity {
	case "", alert.Warning, alert.Major, alert.Critical:
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("severity (%s) must be one of warning, major, critical", f.Severity))
		return f, false
	}
	return f, true
}

func (a *API) listAlerts(w http.ResponseWriter, r *http.Request) {
	f, ok := alertFilter(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"alerts": a.alerts.List(f)})
}

// SSEHeartbeat is how often the event stream writes a comment line, so
// proxies and the client see the connection alive while no alert moves.
var SSEHeartbeat = 15 * time.Second

// alertEvents streams alert events as server-sent events: first every
// alert the filter keeps, oldest first, then each new event as the view
// receives it. Each event's id is the alert's event id (alert/revision),
// so a client can drop what it already has. When the client falls too far
// behind the stream ends; EventSource reconnects and starts again from the
// list.
func (a *API) alertEvents(w http.ResponseWriter, r *http.Request) {
	f, ok := alertFilter(w, r)
	if !ok {
		return
	}
	// Subscribe before the list is taken, so no event falls between.
	ch, stop := a.alerts.Subscribe()
	defer stop()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	send := func(data []byte, event, id string) error {
		// Each write gets its own deadline: the server's write timeout
		// bounds a stuck client, not the life of the stream.
		_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		var err error
		if id != "" {
			_, err = fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", id, event, data)
		} else {
			_, err = fmt.Fprintf(w, "%s\n\n", data)
		}
		if err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send([]byte("retry: 2000"), "", ""); err != nil {
		return
	}
	list := a.alerts.List(f)
	slices.Reverse(list)
	for i := range list {
		if err := sendAlert(send, &list[i]); err != nil {
			return
		}
	}
	if err := send([]byte(`{"alerts":`+fmt.Sprint(len(list))+`}`), "ready", "ready"); err != nil {
		return
	}
	tick := time.NewTicker(SSEHeartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if err := send([]byte(": heartbeat"), "", ""); err != nil {
				return
			}
		case al, ok := <-ch:
			if !ok {
				a.log.Info("alert event stream ended: the client fell behind", "remote", r.RemoteAddr)
				return
			}
			if !f.Match(&al) {
				continue
			}
			if err := sendAlert(send, &al); err != nil {
				return
			}
		}
	}
}

func sendAlert(send func(data []byte, event, id string) error, al *alert.Alert) error {
	b, err := json.Marshal(al)
	if err != nil {
		return err
	}
	return send(b, "alert", al.EventID())
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
