package job

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pdmstream/pdm/pdmkit/wire"
	"github.com/pdmstream/pdm/trainer/internal/validate"
)

// States of a job.
const (
	Running  = "running"
	Promoted = "promoted" // activated for the class's assets
	Shadow   = "shadow"   // published as the model's shadow, activation pending
	Kept     = "kept"     // validated and not promoted: the active version stays
	NoData   = "no_data"  // too little normal history: nothing trained
	Failed   = "failed"   // an error: nothing published
)

// Record is what a job did and why: its request, the data it read, the
// candidate and active version with their metrics, the decision, and the
// plots beside it. It is written whole on every change.
type Record struct {
	ID      string               `json:"id"`
	Class   string               `json:"class"`
	Model   string               `json:"model"`
	Site    string               `json:"site"`
	Assets  []string             `json:"assets"`
	Request wire.TrainingRequest `json:"request"`
	Started time.Time            `json:"started"`
	Ended   *time.Time           `json:"ended,omitempty"`
	State   string               `json:"state"`
	Reason  string               `json:"reason,omitempty"`
	Data    *Data                `json:"data,omitempty"`
	Cand    *Version             `json:"candidate,omitempty"`
	Active  *Version             `json:"active,omitempty"`
	Plots   []string             `json:"plots,omitempty"`
	Shadow  *ShadowCheck         `json:"shadow,omitempty"`
}

// Data is the history a job read and what it trained on.
type Data struct {
	// From and To are the range read; Step its resampling.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
	Step string    `json:"step"`
	// Read rows, Rows kept as normal (the rest excluded), TrainRows
	// trained on, HoldOut held out for validation.
	Read      int `json:"read"`
	Rows      int `json:"rows"`
	TrainRows int `json:"train_rows"`
	HoldOut   int `json:"holdout_rows"`
	// Gaps and Exclusions counted over all assets.
	Gaps       int `json:"gaps"`
	Exclusions int `json:"exclusions"`
	// Hash is the data's hash (the assets' Series.Hash, hashed in order).
	Hash string `json:"hash"`
	// TrainedFrom and TrainedTo are the first and last training row.
	TrainedFrom time.Time `json:"trained_from"`
	TrainedTo   time.Time `json:"trained_to"`
}

// Version is a model version and its validation.
type Version struct {
	Version string           `json:"version"`
	Kind    string           `json:"kind"`
	Metrics validate.Metrics `json:"metrics"`
}

// ShadowCheck is a shadowed candidate's trial: until when, and what the
// scorer's comparison said at its end.
type ShadowCheck struct {
	Until              time.Time `json:"until"`
	Count              int64     `json:"count"`
	AlertDisagreements int64     `json:"alert_disagreements"`
}

// Store keeps job records and plots in a folder, one subfolder per job.
type Store struct {
	dir string
	mu  sync.Mutex
}

// NewStore uses dir, creating it.
func NewStore(dir string) (*Store, error) {
	if err := os.MkdirAll(filepath.Join(dir, "jobs"), 0o755); err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir is the folder of job id.
func (s *Store) Dir(id string) string { return filepath.Join(s.dir, "jobs", id) }

// Put writes r whole, atomically (a reader sees the old or the new record).
func (s *Store) Put(r *Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.Dir(r.ID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("job: %w", err)
	}
	tmp := filepath.Join(dir, ".record.json.tmp")
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("job: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, "record.json"))
}

// ErrNoJob: no record with that id.
var ErrNoJob = errors.New("job: no such job")

// Get reads job id's record.
func (s *Store) Get(id string) (*Record, error) {
	if !wire.ValidID(id) {
		return nil, ErrNoJob
	}
	b, err := os.ReadFile(filepath.Join(s.Dir(id), "record.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoJob
	}
	if err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("job: %s: %w", id, err)
	}
	return &r, nil
}

// List returns every record, newest first.
func (s *Store) List() ([]*Record, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "jobs"))
	if err != nil {
		return nil, fmt.Errorf("job: %w", err)
	}
	var out []*Record
	for _, e := range ents {
		if r, err := s.Get(e.Name()); err == nil {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Record) int { return b.Started.Compare(a.Started) })
	return out, nil
}

// Plot returns the path of a job's plot file name, refusing anything but
// a plain file name of the job's folder.
func (s *Store) Plot(id, name string) (string, error) {
	if !wire.ValidID(id) || name == "" || strings.ContainsAny(name, `/\`) || !strings.HasSuffix(name, ".png") {
		return "", ErrNoJob
	}
	return filepath.Join(s.Dir(id), name), nil
}
