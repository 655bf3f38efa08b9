package registry

import "errors"

// Sentinel errors; the API maps each to a status code.
var (
	// ErrNotFound: the model or version is not in the registry.
	ErrNotFound = errors.New("not found")
	// ErrRefused: the artifact failed its checksum, did not load, or does
	// not fit the assets it would score; the active version is unchanged.
	ErrRefused = errors.New("artifact refused")
	// ErrExists: the version is already registered with different content.
	ErrExists = errors.New("version already exists")
	// ErrNoPrevious: rollback has no earlier version to go back to.
	ErrNoPrevious = errors.New("no previous version")
	// ErrUnloaded: the model was unloaded from the repository; load it
	// before serving or activating it.
	ErrUnloaded = errors.New("model unloaded")
	// ErrInService: the model scores assets, so it cannot be unloaded.
	ErrInService = errors.New("model in service")
	// ErrNotReady: the registry has not yet read its topic to the end.
	ErrNotReady = errors.New("registry not ready")
)
