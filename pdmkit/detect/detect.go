// Package detect builds the live detector of any model artifact: the
// reconstruction and forecaster kinds of pdmkit/anomaly and the
// remaining-useful-life kind of pdmkit/rul. The scorer and the trainer's
// validation both build detectors here, so a version is judged by the
// detector that will score it.
package detect

import (
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
	"github.com/pdmstream/pdm/pdmkit/rul"
)

// New builds the detector a's kind calls for. An artifact it cannot build
// is an error, never a panic.
func New(a *model.Artifact) (anomaly.Detector, error) {
	if a.Kind == model.RUL {
		return rul.NewDetector(a)
	}
	return anomaly.FromArtifact(a)
}
