package job

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/trainer/internal/registry"
)

// Offline is a Registry that publishes nowhere: `trainer run --dry-run`
// validates a candidate against no active version and writes its artifact
// into a folder instead of uploading it.
type Offline struct {
	Dir string
	Log *slog.Logger
}

// Model implements Registry: there is never an active version.
func (o Offline) Model(context.Context, string) (registry.Model, error) {
	return registry.Model{}, &registry.Error{Status: 404, Reason: "offline: no registry"}
}

// Artifact implements Registry.
func (o Offline) Artifact(context.Context, string, string) (*model.Artifact, error) {
	return nil, &registry.Error{Status: 404, Reason: "offline: no registry"}
}

// Upload writes the artifact to Dir/name-version.json.
func (o Offline) Upload(_ context.Context, a *model.Artifact) error {
	path := filepath.Join(o.Dir, a.Name+"-"+a.Version+".json")
	if err := a.WriteFile(path); err != nil {
		return err
	}
	o.Log.Info("artifact written", "path", path)
	return nil
}

// Activate implements Registry: nothing to activate.
func (o Offline) Activate(context.Context, string, string, []string) error { return nil }

// SetShadow implements Registry.
func (o Offline) SetShadow(context.Context, string, string) error { return nil }

// Shadow implements Registry.
func (o Offline) Shadow(context.Context, string) (registry.ShadowReport, error) {
	return registry.ShadowReport{}, nil
}
