// Package registry is the trainer's side of the model registry: the
// scorer's API (docs/scorer.md), through which every version the trainer
// publishes goes — the same checks, the same compacted topic, the same hot
// swap as a version an ML engineer uploads by hand.
//
// Calls are retried with backoff while the scorer is unreachable or answers
// 5xx; a 4xx answer (a refused artifact, a missing model) is returned at
// once as an *Error with the scorer's reason.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/retry"
)

// Client calls one scorer's registry API.
type Client struct {
	base  string
	token string
	http  *http.Client
	log   *slog.Logger
	// Backoff and RetryFor bound the retries of an unreachable scorer
	// (default: 100ms doubling to 5s, for 2 minutes).
	Backoff  retry.Backoff
	RetryFor time.Duration
}

// New returns a client of the scorer at base (http://host:port) using
// token for writes.
func New(base, token string, log *slog.Logger) *Client {
	return &Client{base: strings.TrimRight(base, "/"), token: token, http: &http.Client{Timeout: 30 * time.Second}, log: log,
		Backoff: retry.Backoff{Max: 5 * time.Second}, RetryFor: 2 * time.Minute}
}

// Error is the scorer's refusal of a call.
type Error struct {
	Status int
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("registry: %d %s", e.Status, e.Reason) }

// ErrNotFound matches an *Error with status 404.
var ErrNotFound = errors.New("registry: not found")

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *Error) Is(target error) bool {
	return target == ErrNotFound && e.Status == http.StatusNotFound
}

// Model is what the registry knows of one model.
type Model struct {
	Name     string `json:"name"`
	Active   string `json:"active"`
	Shadow   string `json:"shadow"`
	Versions []struct {
		Version string `json:"version"`
	} `json:"versions"`
	Refused map[string]string `json:"refused"`
}

// Has reports whether the model has version v.
func (m Model) Has(v string) bool {
	for _, x := range m.Versions {
		if x.Version == v {
			return true
		}
	}
	return false
}

// Model returns the model's description; ErrNotFound when it has none.
func (c *Client) Model(ctx context.Context, name string) (Model, error) {
	var m Model
	err := c.call(ctx, "GET", "/v1/models/"+url.PathEscape(name), nil, &m)
	return m, err
}

// Artifact downloads one version's artifact and loads (verifies) it.
func (c *Client) Artifact(ctx context.Context, name, version string) (*model.Artifact, error) {
	var raw json.RawMessage
	if err := c.call(ctx, "GET", "/v1/models/"+url.PathEscape(name)+"/versions/"+url.PathEscape(version)+"/artifact", nil, &raw); err != nil {
		return nil, err
	}
	return model.Load(bytes.NewReader(raw))
}

// Upload stores a sealed artifact as its name and version (uploading the
// same artifact again is accepted).
func (c *Client) Upload(ctx context.Context, a *model.Artifact) error {
	var buf bytes.Buffer
	if err := a.Write(&buf); err != nil {
		return err
	}
	return c.call(ctx, "PUT", "/v1/models/"+url.PathEscape(a.Name)+"/versions/"+url.PathEscape(a.Version), buf.Bytes(), nil)
}

// Activate makes version active for the model's assets and pins assets to
// the model.
func (c *Client) Activate(ctx context.Context, name, version string, assets []string) error {
	b, _ := json.Marshal(map[string]any{"version": version, "assets": assets})
	return c.call(ctx, "POST", "/v1/models/"+url.PathEscape(name)+"/activate", b, nil)
}

// SetShadow scores version beside the active one ("" ends shadowing).
func (c *Client) SetShadow(ctx context.Context, name, version string) error {
	b, _ := json.Marshal(map[string]string{"version": version})
	return c.call(ctx, "PUT", "/v1/models/"+url.PathEscape(name)+"/shadow", b, nil)
}

// ShadowReport is the scorer's comparison of a shadow with the active
// version.
type ShadowReport struct {
	Active             string  `json:"active"`
	Shadow             string  `json:"shadow"`
	Count              int64   `json:"count"`
	MeanAbsDiff        float64 `json:"mean_abs_diff"`
	AlertDisagreements int64   `json:"alert_disagreements"`
}

// Shadow returns the comparison of model name's shadow version.
func (c *Client) Shadow(ctx context.Context, name string) (ShadowReport, error) {
	var r ShadowReport
	err := c.call(ctx, "GET", "/v1/models/"+url.PathEscape(name)+"/shadow", nil, &r)
	return r, err
}

// call does one request, retrying while the scorer is unreachable or
// answers 5xx, and decodes a 2xx JSON answer into out.
func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	ctx, cancel := context.WithTimeout(ctx, c.RetryFor)
	defer cancel()
	failing := false
	err := retry.Do(ctx, c.Backoff, func(n int, err error, wait time.Duration) {
		if !failing {
			failing = true
			c.log.Warn("model registry unavailable; retrying", "call", method+" "+path, "err", err)
		}
	}, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
		if err != nil {
			return retry.Permanent(err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if method != "GET" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, model.MaxSize+1))
		if err != nil {
			return err
		}
		switch {
		case resp.StatusCode >= 500:
			return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
		case resp.StatusCode >= 300:
			var e struct {
				Error string `json:"error"`
			}
			if json.Unmarshal(b, &e) != nil || e.Error == "" {
				e.Error = strings.TrimSpace(string(b))
			}
			return retry.Permanent(&Error{Status: resp.StatusCode, Reason: e.Error})
		}
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				return retry.Permanent(fmt.Errorf("registry: %s %s: answer: %w", method, path, err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("registry: %s %s: %w", method, path, err)
	}
	if failing {
		c.log.Info("model registry reachable again", "call", method+" "+path)
	}
	return nil
}
