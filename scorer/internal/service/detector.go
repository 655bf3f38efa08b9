package service

import (
	"github.com/pdmstream/pdm/pdmkit/anomaly"
	"github.com/pdmstream/pdm/pdmkit/model"
)

// Detector builds a detector for one asset from an artifact: the
// reconstruction and forecaster kinds of pdmkit/anomaly. An artifact that
// fails here is refused by the registry with this error as the reason.
func Detector(a *model.Artifact) (anomaly.Detector, error) {
	return anomaly.FromArtifact(a)
}
