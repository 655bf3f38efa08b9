package registry

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pdmstream/pdm/pdmkit/model/modeltest"
	"github.com/pdmstream/pdm/pdmkit/stacktest"
)

// A tampered and an unsigned artifact written straight to the models
// topic, as a producer other than a scorer could, are refused and counted
// when a scorer reads the topic; the follower keeps going: the valid
// record before them loads and an upload after them succeeds.
func TestKafkaTopicRefusesTamperedRecord(t *testing.T) {
	kc := stacktest.KafkaConn(t)
	topic := stacktest.Topic(t, "registry-signed", 1)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := NewKafkaLog(kc, topic, log)
	defer w.Close(ctx)
	for i, value := range [][]byte{artifact(t, "m", "1"), tamperedArtifact(t, "m", "2"), sealed(t, unsigned(t, "m", "3"))} {
		if err := w.Append(ctx, artifactKey("m", strconv.Itoa(i+1)), value); err != nil {
			t.Fatal(err)
		}
	}

	kl := NewKafkaLog(kc, topic, log)
	defer kl.Close(ctx)
	r := New(kl, fakeFactory, nil, log)
	r.SetTrust(modeltest.Trust())
	caught := make(chan struct{})
	done := make(chan error, 1)
	fctx, stop := context.WithCancel(ctx)
	go func() { done <- kl.Follow(fctx, r.Apply, func() { close(caught) }) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("follow: %v", err)
		}
	}()
	select {
	case <-caught:
	case err := <-done:
		t.Fatalf("follow stopped: %v", err)
	case <-ctx.Done():
		t.Fatal("the registry did not read its topic")
	}
	if n := r.RefusedRecords(); n != 2 {
		t.Fatalf("refused records %d, want 2", n)
	}
	info, _ := r.Model("m")
	if len(info.Versions) != 1 || info.Versions[0].Version != "1" || !strings.Contains(info.Refused["2"], "signature") || !strings.Contains(info.Refused["3"], "no signature") {
		t.Fatalf("model info %+v", info)
	}
	if _, err := r.Upload(ctx, "m", "4", artifact(t, "m", "4")); err != nil {
		t.Fatalf("upload after the refused records: %v", err)
	}
}
