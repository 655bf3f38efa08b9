package stream_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/kafkaconn"
	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
	"github.com/pdmstream/pdm/scorer/internal/registry"
	"github.com/pdmstream/pdm/scorer/internal/stream"
)

// followRegistry runs a registry instance on the models topic until the
// test ends and returns it once it has read the topic.
func followRegistry(t *testing.T, kc *kafkaconn.Conn, topic string) *registry.Registry {
	return followRegistryTB(t, kc, topic)
}

func followRegistryTB(t testing.TB, kc *kafkaconn.Conn, topic string) *registry.Registry {
	return followRegistryBudget(t, kc, topic, 0)
}

// followRegistryBudget is followRegistry with a bound on the artifact
// bytes in memory (registry.SetCacheBytes).
func followRegistryBudget(t testing.TB, kc *kafkaconn.Conn, topic string, budget int64) *registry.Registry {
	t.Helper()
	kl := registry.NewKafkaLog(kc, topic, testLog(t))
	reg := registry.New(kl, factory, nil, testLog(t))
	reg.SetCacheBytes(budget)
	reg.SetTrust(modeltest.Trust())
	ctx, cancel := context.WithCancel(context.Background())
	caught := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- kl.Follow(ctx, reg.Apply, func() { close(caught) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry follower: %v", err)
		}
		kl.Close(context.Background())
	})
	select {
	case <-caught:
	case err := <-done:
		t.Fatalf("registry follower: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("registry did not read its topic")
	}
	return reg
}

// streamer keeps producing chunks of readings until told to finish, then
// sends tail more chunks and stops.
type streamer struct {
	finish chan struct{}
	done   chan error
	mu     sync.Mutex
	last   uint64
}

func stream1(t *testing.T, p *producer, assets []string, chunk, tail uint64) *streamer {
	s := &streamer{finish: make(chan struct{}), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		var err error
		defer func() { s.done <- err }()
		left := uint64(0)
		finishing := false
		for seq := uint64(1); ; seq += chunk {
			if err = p.send(ctx, assets, seq, seq+chunk-1); err != nil {
				return
			}
			s.mu.Lock()
			s.last = seq + chunk - 1
			s.mu.Unlock()
			if !finishing {
				select {
				case <-s.finish:
					finishing, left = true, tail
				default:
				}
			}
			if finishing {
				if left == 0 {
					return
				}
				left--
			}
		}
	}()
	t.Cleanup(cancel)
	return s
}

// stop ends production and returns how many seqs per asset were sent.
func (s *streamer) stop(t *testing.T) uint64 {
	t.Helper()
	close(s.finish)
	if err := <-s.done; err != nil {
		t.Fatalf("producer: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

func (s *streamer) sent() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// A new version published while readings stream takes over between two
// readings of every partition: no reading is scored twice or skipped.
func TestHotSwapUnderLoad(t *testing.T) {
	tp := newTopics(t, 3)
	modelsTopic := stacktest.Topic(t, "scorer-models", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := followRegistry(t, tp.kc, modelsTopic)
	for _, v := range []string{"1", "2"} {
		if _, err := reg.Upload(ctx, "bearing", v, artifactBytes(t, "bearing", v)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Activate(ctx, "bearing", "1", registry.Scope{Default: true}); err != nil {
		t.Fatal(err)
	}
	admin := followRegistry(t, tp.kc, modelsTopic)

	scores := collect(t, tp.kc, tp.scores, 3)
	start(t, tp, reg, 100)
	assets := assetNames(6)
	st := stream1(t, newProducer(t, tp.kc, tp.readings), assets, 10, 100)
	stacktest.Eventually(t, 60*time.Second, func() bool { return scores.len() >= 1500 }, "scoring did not start: %d scores", scores.len())

	// Publish through another registry instance, as the API of another
	// scorer would, and time until the first score by the new version.
	published := time.Now()
	if _, err := admin.Activate(ctx, "bearing", "2", registry.Scope{}); err != nil {
		t.Fatal(err)
	}
	sentAtSwap := st.sent()
	var firstV2 time.Duration
	stacktest.Eventually(t, 10*time.Second, func() bool {
		for _, s := range scoresOf(t, scores.snapshot()) {
			if s.Version == "2" {
				firstV2 = time.Since(published)
				return true
			}
		}
		return false
	}, "no score by version 2")
	perAsset := st.stop(t)
	n := int(perAsset) * len(assets)
	stacktest.Eventually(t, 60*time.Second, func() bool { return scores.len() >= n }, "%d of %d scores", scores.len(), n)
	t.Logf("swap: publish to first score by the new version %s (bound, scores polled every 50 ms); %d readings per asset sent at the swap, %d in all", firstV2, sentAtSwap, perAsset)
	if firstV2 > time.Second+100*time.Millisecond {
		t.Errorf("the new version took %s to score, want within a second", firstV2)
	}

	got := scoresOf(t, scores.snapshot())
	if len(got) != n {
		t.Fatalf("%d score records for %d readings", len(got), n)
	}
	byID := map[string]bool{}
	byPart := map[int][]stream.Score{}
	for _, s := range got {
		if byID[s.ID] {
			t.Fatalf("reading %s scored twice", s.ID)
		}
		byID[s.ID] = true
		byPart[s.Source.Partition] = append(byPart[s.Source.Partition], s)
	}
	for _, a := range assets {
		for seq := uint64(1); seq <= perAsset; seq++ {
			if !byID[stream.ScoreID(a, seq)] {
				t.Fatalf("reading %s/%d not scored", a, seq)
			}
		}
	}
	for part, ss := range byPart {
		sort.Slice(ss, func(i, j int) bool {
			if ss[i].Source.Offset != ss[j].Source.Offset {
				return ss[i].Source.Offset < ss[j].Source.Offset
			}
			return ss[i].Seq < ss[j].Seq
		})
		switches, v1, v2 := 0, 0, 0
		for i, s := range ss {
			switch s.Version {
			case "1":
				v1++
			case "2":
				v2++
			default:
				t.Fatalf("partition %d: score %s by version %q", part, s.ID, s.Version)
			}
			if i > 0 && s.Version != ss[i-1].Version {
				switches++
				if s.Version != "2" {
					t.Fatalf("partition %d: version went back from 2 to 1 at %s", part, s.ID)
				}
			}
		}
		t.Logf("partition %d: %d by v1, then %d by v2", part, v1, v2)
		if switches != 1 {
			t.Errorf("partition %d: %d version switches, want exactly 1", part, switches)
		}
	}
}

// Under a byte budget, versions nothing scores with leave memory; another
// instance activating one of them makes this instance read it back from
// the topic and score with it, and a lookup reads back the exact bytes
// that were uploaded.
func TestModelCacheReadsBackFromTheTopic(t *testing.T) {
	kc := stacktest.KafkaConn(t)
	topic := stacktest.Topic(t, "scorer-models", 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	size := int64(len(artifactBytes(t, "bearing", "1")))
	reg := followRegistryBudget(t, kc, topic, size+size/2)
	raw := map[string][]byte{}
	for _, v := range []string{"1", "2", "3"} {
		raw[v] = artifactBytes(t, "bearing", v)
		if _, err := reg.Upload(ctx, "bearing", v, raw[v]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Activate(ctx, "bearing", "1", registry.Scope{Default: true}); err != nil {
		t.Fatal(err)
	}
	if reg.ResidentBytes() > size || reg.Evictions() < 2 {
		t.Fatalf("resident %d bytes, %d evictions: want only the active artifact (%d bytes) in memory", reg.ResidentBytes(), reg.Evictions(), size)
	}
	admin := followRegistry(t, kc, topic)
	if _, err := admin.Activate(ctx, "bearing", "2", registry.Scope{}); err != nil {
		t.Fatal(err)
	}
	stacktest.Eventually(t, 10*time.Second, func() bool {
		b := reg.Resolve("", "pump-1")
		return b.Active != nil && b.Active.Key() == "bearing@2" && b.Active.New != nil
	}, "the instance with the budget did not take version 2 from the topic")
	d, err := reg.Resolve("", "pump-1").Active.New()
	if err != nil {
		t.Fatal(err)
	}
	if res, _ := d.Observe(time.Now(), map[string]float64{"load": 1, "temp": 1}); res.Version != "2" {
		t.Fatalf("scored by version %q, want 2", res.Version)
	}
	v, err := reg.Lookup(ctx, "bearing", "3")
	if err != nil || string(v.Raw) != string(raw["3"]) {
		t.Fatalf("lookup of version 3 out of memory: %v", err)
	}
}
