package registry

import (
	"context"
	"log/slog"
	"sync"
)

// memoryLog applies each record as soon as it is appended: a registry for
// a single process with nothing durable, used by tests and tools.
type memoryLog struct {
	mu sync.Mutex
	r  *Registry
}

func (m *memoryLog) Append(_ context.Context, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.r.Apply(key, value)
	return nil
}

// NewMemory returns a registry that keeps its records in memory only.
func NewMemory(factory Factory, catalog Catalog, log *slog.Logger) *Registry {
	m := &memoryLog{}
	r := New(m, factory, catalog, log)
	m.r = r
	return r
}
