package backtest

import "github.com/pdmstream/pdm/pdmkit/anomaly"

// testDetector keeps fuzzing fast: a tiny window and few epochs.
var testDetector = anomaly.OnlineConfig{Window: 2, Epochs: 3, Frozen: true}
