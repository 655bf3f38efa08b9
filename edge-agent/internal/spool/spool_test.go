package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, dir string, opts Options) *Spool {
	t.Helper()
	s, err := Open(dir, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

func next(t *testing.T, s *Spool) Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	r, err := s.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func appendN(t *testing.T, s *Spool, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := s.Append(fmt.Appendf(nil, "rec-%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOrderAcrossSegmentsAndRestart(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 200, MaxBytes: 1 << 20, SyncInterval: time.Hour}
	s := open(t, dir, opts)
	appendN(t, s, 0, 100)
	var last Record
	for i := 0; i < 40; i++ {
		last = next(t, s)
		if want := fmt.Sprintf("rec-%05d", i); string(last.Data) != want {
			t.Fatalf("read %q, want %q", last.Data, want)
		}
	}
	if err := s.Commit(last, []byte(`{"a":40}`)); err != nil {
		t.Fatal(err)
	}
	// Read more without committing: these must come again after a restart.
	for i := 0; i < 10; i++ {
		next(t, s)
	}
	if p, _ := s.Stats(); p != 60 {
		t.Fatalf("pending %d, want 60", p)
	}
	s.Close(context.Background())

	segs, _ := listSegments(dir)
	s = open(t, dir, opts)
	if string(s.Meta()) != `{"a":40}` {
		t.Fatalf("meta %q", s.Meta())
	}
	if p, _ := s.Stats(); p != 60 {
		t.Fatalf("pending after restart %d, want 60", p)
	}
	for i := 40; i < 100; i++ {
		r := next(t, s)
		if want := fmt.Sprintf("rec-%05d", i); string(r.Data) != want {
			t.Fatalf("after restart read %q, want %q", r.Data, want)
		}
		last = r
	}
	if err := s.Commit(last, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := listSegments(dir)
	if len(after) >= len(segs) || len(after) != 1 {
		t.Errorf("segments before %d, after full commit %d: acked segments should be deleted", len(segs), len(after))
	}
	if p, _ := s.Stats(); p != 0 {
		t.Errorf("pending %d after committing everything", p)
	}
}

// A crash in the middle of an append leaves a torn record: Open cuts it off,
// keeps everything before it and the cursor, and appends after it.
func TestTornTailIsCut(t *testing.T) {
	for _, cut := range []int{1, 4, 8, 11} {
		t.Run(fmt.Sprint("cut", cut), func(t *testing.T) {
			dir := t.TempDir()
			s := open(t, dir, Options{SyncInterval: 0})
			appendN(t, s, 0, 10)
			r := next(t, s)
			r = next(t, s)
			if err := s.Commit(r, []byte("m")); err != nil {
				t.Fatal(err)
			}
			s.Close(context.Background())
			segs, _ := listSegments(dir)
			path := filepath.Join(dir, fmt.Sprintf("%020d.seg", segs[len(segs)-1]))
			fi, _ := os.Stat(path)
			if err := os.Truncate(path, fi.Size()-int64(cut)); err != nil {
				t.Fatal(err)
			}
			s = open(t, dir, Options{SyncInterval: 0})
			if p, _ := s.Stats(); p != 7 {
				t.Fatalf("pending %d, want 7 (10 - 2 committed - 1 torn)", p)
			}
			if err := s.Append([]byte("rec-after")); err != nil {
				t.Fatal(err)
			}
			var got []string
			for i := 0; i < 8; i++ {
				got = append(got, string(next(t, s).Data))
			}
			if got[0] != "rec-00002" || got[6] != "rec-00008" || got[7] != "rec-after" {
				t.Fatalf("after restart read %v", got)
			}
		})
	}
}

// Garbage after the last record (a torn header, zeroed pages) is cut too.
func TestGarbageTail(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, 0, 3)
	s.Close(context.Background())
	segs, _ := listSegments(dir)
	f, _ := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", segs[0])), os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0xff, 0xff, 0, 0, 1, 2, 3})
	f.Close()
	s = open(t, dir, Options{})
	if p, _ := s.Stats(); p != 3 {
		t.Fatalf("pending %d, want 3", p)
	}
}

func TestCursorSurvivesAndRewind(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	appendN(t, s, 0, 5)
	r := next(t, s)
	s.Commit(r, nil)
	next(t, s)
	next(t, s)
	s.Rewind()
	if got := string(next(t, s).Data); got != "rec-00001" {
		t.Fatalf("after rewind read %q", got)
	}
	if s.Unread() != 3 {
		t.Fatalf("unread %d", s.Unread())
	}
}

func TestFull(t *testing.T) {
	s := open(t, t.TempDir(), Options{MaxBytes: 100, SegmentBytes: 50})
	var err error
	n := 0
	for ; n < 100; n++ {
		if err = s.Append([]byte("0123456789")); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || n == 0 {
		t.Fatalf("after %d appends: %v, want ErrFull", n, err)
	}
	// Draining and committing frees room again.
	var r Record
	for i := 0; i < n; i++ {
		r = next(t, s)
	}
	if err := s.Commit(r, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append([]byte("0123456789")); err != nil {
		t.Fatalf("after drain: %v", err)
	}
}

func TestNextWaitsForAppend(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	got := make(chan string, 1)
	go func() {
		r, err := s.Next(context.Background())
		if err == nil {
			got <- string(r.Data)
		}
	}()
	s.Append([]byte("late"))
	select {
	case v := <-got:
		if v != "late" {
			t.Fatalf("got %q", v)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next did not wake on append")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next on cancelled ctx: %v", err)
	}
}

func TestScan(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 64})
	appendN(t, s, 0, 20)
	r := next(t, s)
	s.Commit(r, nil)
	var n int
	if err := s.Scan(func([]byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 19 {
		t.Fatalf("scan saw %d, want 19", n)
	}
}

// fullDisk is a segment whose next write stores half its bytes and fails,
// as on a full disk, and which can then be neither cut nor repositioned.
type fullDisk struct {
	segment
	fail *bool // the next write fails; cutting fails from then on
	torn *bool
}

var errNoSpace = errors.New("no space left on device")

func (f fullDisk) WriteAt(b []byte, off int64) (int, error) {
	if *f.fail {
		*f.fail, *f.torn = false, true
		n, _ := f.segment.WriteAt(b[:len(b)/2], off)
		return n, errNoSpace
	}
	return f.segment.WriteAt(b, off)
}

func (f fullDisk) Truncate(size int64) error {
	if *f.torn {
		return errNoSpace
	}
	return f.segment.Truncate(size)
}

// TestFullDiskNeverCorruptsTheSpool: an append that fails half-written,
// on a file that can then not be cut, loses only itself: the records
// before and after it are read back in order, now and after a restart.
func TestFullDiskNeverCorruptsTheSpool(t *testing.T) {
	fail, torn := false, false
	saved := openSegment
	t.Cleanup(func() { openSegment = saved })
	openSegment = func(path string, flag int) (segment, error) {
		f, err := saved(path, flag)
		if err != nil {
			return nil, err
		}
		return fullDisk{f, &fail, &torn}, nil
	}
	dir := t.TempDir()
	s, err := Open(dir, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 3)
	fail = true
	if err := s.Append([]byte("rec-lost-to-a-full-disk")); !errors.Is(err, errNoSpace) {
		t.Fatalf("append on a full disk: %v", err)
	}
	appendN(t, s, 3, 6)
	want := []string{"rec-00000", "rec-00001", "rec-00002", "rec-00003", "rec-00004", "rec-00005"}
	for _, w := range want {
		if r := next(t, s); string(r.Data) != w {
			t.Fatalf("read %q, want %q", r.Data, w)
		}
	}
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	openSegment = saved
	s = open(t, dir, Options{})
	for _, w := range want {
		if r := next(t, s); string(r.Data) != w {
			t.Fatalf("after a restart read %q, want %q", r.Data, w)
		}
	}
}
