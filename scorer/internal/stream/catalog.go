package stream

import (
	"slices"
	"sort"
	"sync"
)

// Catalog remembers the site and sensors each asset seen by this instance reports,
// so the registry can refuse a model that would not fit.
type Catalog struct {
	mu     sync.RWMutex
	assets map[string]catalogEntry
}

type catalogEntry struct {
	site    string
	sensors []string
}

// NewCatalog returns an empty catalog.
func NewCatalog() *Catalog { return &Catalog{assets: map[string]catalogEntry{}} }

// Assets lists the known assets.
func (c *Catalog) Assets() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.assets))
	for a := range c.assets {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// Sensors returns the sensors asset reported last.
func (c *Catalog) Sensors(asset string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return slices.Clone(c.assets[asset].sensors)
}

// Site returns the site asset reported last.
func (c *Catalog) Site(asset string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.assets[asset].site
}

func (c *Catalog) set(asset, site string, sensors []string) {
	c.mu.Lock()
	c.assets[asset] = catalogEntry{site: site, sensors: sensors}
	c.mu.Unlock()
}

func (c *Catalog) remove(asset string) {
	c.mu.Lock()
	delete(c.assets, asset)
	c.mu.Unlock()
}
