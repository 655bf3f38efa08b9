package registry

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Reader is a Log that can read back the newest record of a key, so the
// registry can drop the bytes of versions nothing scores with and load
// them again when asked.
type Reader interface {
	Read(ctx context.Context, key string) ([]byte, error)
}

// reloadTimeout bounds reading one artifact back from the log.
const reloadTimeout = 30 * time.Second

// SetCacheBytes bounds the bytes of the artifacts kept in memory (0: no
// bound). Versions that score (active, shadow, pinned) always stay; past
// the bound the others leave memory, least recently looked up first,
// keeping what lists and lineage show, and are read back from the log when
// looked up or activated. It works only when the log is a Reader; call it
// before Run.
func (r *Registry) SetCacheBytes(n int64) {
	if _, ok := r.store.(Reader); ok {
		r.budget = n
	}
}

// ResidentBytes is the size of the artifacts in memory.
func (r *Registry) ResidentBytes() int64 {
	var n int64
	for _, v := range r.snap.Load().versions {
		if v.resident() {
			n += int64(v.Size)
		}
	}
	return n
}

// Evictions counts versions that left memory.
func (r *Registry) Evictions() int64 { return r.evictions.Load() }

// withinBudget returns s with versions outside c.live() made non-resident,
// least recently used first, until the resident bytes fit the budget.
func (r *Registry) withinBudget(s *snapshot) *snapshot {
	if r.budget <= 0 {
		return s
	}
	var total int64
	var spare []*Version
	live := s.control.live()
	for key, v := range s.versions {
		if !v.resident() {
			continue
		}
		total += int64(v.Size)
		if !live[key] {
			spare = append(spare, v)
		}
	}
	if total <= r.budget {
		return s
	}
	slices.SortFunc(spare, func(a, b *Version) int {
		if d := a.used.Load() - b.used.Load(); d != 0 {
			return int(min(max(d, -1), 1))
		}
		return a.Registered.Compare(b.Registered)
	})
	next := s.withVersions()
	for _, v := range spare {
		if total <= r.budget {
			break
		}
		next.versions[v.Key()] = v.evicted()
		total -= int64(v.Size)
		r.evictions.Add(1)
		r.log.Info("model version left memory", "model", v.Name, "version", v.Version, "bytes", v.Size, "resident_bytes", total, "budget", r.budget)
	}
	if total > r.budget {
		r.log.Warn("versions in use exceed the model cache", "resident_bytes", total, "budget", r.budget)
	}
	return next
}

// reload reads v's artifact back from the log and rebuilds it; the bytes
// must be the ones registered.
func (r *Registry) reload(ctx context.Context, v *Version) (*Version, error) {
	rd, ok := r.store.(Reader)
	if !ok {
		return nil, fmt.Errorf("registry: %s is not in memory and the log cannot be read back", v.Key())
	}
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	raw, err := rd.Read(ctx, artifactKey(v.Name, v.Version))
	if err != nil {
		return nil, fmt.Errorf("registry: read back %s: %w", v.Key(), err)
	}
	full, err := loadVersion(raw, r.factory, r.trust, v.Registered)
	if err != nil {
		return nil, fmt.Errorf("registry: read back %s: %w", v.Key(), err)
	}
	if full.SHA256 != v.SHA256 {
		return nil, fmt.Errorf("registry: read back %s: sha256 %s, registered %s", v.Key(), full.SHA256, v.SHA256)
	}
	full.used.Store(time.Now().UnixNano())
	return full, nil
}

// resident returns v with its weights and bytes, reading them back from the
// log when they left memory.
func (r *Registry) resident(ctx context.Context, v *Version) (*Version, error) {
	v.used.Store(time.Now().UnixNano())
	if v.resident() {
		return v, nil
	}
	full, err := r.reload(ctx, v)
	if err != nil {
		return nil, err
	}
	r.wmu.Lock()
	defer r.wmu.Unlock()
	cur := r.snap.Load()
	if now := cur.versions[v.Key()]; now != nil && now.resident() {
		return now, nil
	}
	r.snap.Store(r.withinBudget(cur.withVersion(full)))
	return full, nil
}

// residentFor reads back the versions c would score with that are not in
// memory in s, for a control record to take effect here. It is called
// with wmu held, so it reads from the log without touching the snapshot.
func (r *Registry) residentFor(s *snapshot, c Control) *snapshot {
	next := s
	for key := range c.live() {
		v := s.versions[key]
		if v == nil || v.resident() {
			continue
		}
		full, err := r.reload(context.Background(), v)
		if err != nil {
			r.log.Warn("version named by control could not be read back", "version", key, "err", err)
			continue
		}
		if next == s {
			next = s.withVersions()
		}
		next.versions[key] = full
	}
	return next
}
