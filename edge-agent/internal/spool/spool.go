// Package spool is the agent's store-and-forward queue: an append-only log
// of records in segment files plus a committed cursor, so readings taken
// while the broker is unreachable are kept on disk and sent later, in order,
// even across an agent restart.
//
// Layout of dir: segment files NNNNNNNNNNNNNNNNNNNN.seg, numbered
// consecutively, each a sequence of records [u32 length][u32 CRC-32C][data]
// (little endian); and the file "cursor", replaced atomically (write, fsync,
// rename, fsync dir), holding the position after the last record the
// consumer committed plus a small opaque blob the consumer stores with it.
//
// Invariants:
//   - records are read back in append order; Commit only moves forward;
//   - a record is delivered again after a restart unless a Commit at or past
//     it completed (at least once);
//   - on Open a torn or corrupt tail of the last segment (a crash mid-append)
//     is cut off; what came before survives;
//   - segments wholly before the cursor are deleted.
//
// Durability: appends go to the page cache at once (a killed process loses
// nothing) and are fsynced every Options.SyncInterval (0: every record), so a
// power cut loses at most that much. The cursor is fsynced on every Commit.
// When the spool holds Options.MaxBytes, Append refuses new records with
// ErrFull: the oldest unsent data is kept and sent in order, the newest is
// dropped, and the caller counts and logs it.
package spool

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	// ErrFull: the spool holds MaxBytes; the record was not stored.
	ErrFull = errors.New("spool full")
	// ErrClosed: the spool was closed.
	ErrClosed = errors.New("spool closed")
)

const (
	headerLen  = 8
	maxRecord  = 16 << 20
	segSuffix  = ".seg"
	cursorName = "cursor"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options bound the spool.
type Options struct {
	// MaxBytes bounds the segment files on disk. Default 1 GiB.
	MaxBytes int64
	// SegmentBytes is the size after which a new segment starts. Default 8 MiB.
	SegmentBytes int64
	// SyncInterval is the fsync period of appends; 0 fsyncs every record.
	SyncInterval time.Duration
}

// Pos is a position in the log: a segment and a byte offset in it.
type Pos struct {
	Seg uint64 `json:"seg"`
	Off int64  `json:"off"`
}

// Record is one record read back, with the position just after it.
type Record struct {
	Data []byte
	// End is the position after this record; commit it once the record is
	// done.
	End Pos
	// index counts records from the spool's start, for the pending gauge.
	index uint64
}

type cursorFile struct {
	Pos
	Meta []byte `json:"meta,omitempty"`
}

// segment is the part of *os.File the appender uses; tests inject failures
// through openSegment.
type segment interface {
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

var openSegment = func(path string, flag int) (segment, error) { return os.OpenFile(path, flag, 0o644) }

// Spool is safe for one appender and one reader running concurrently.
type Spool struct {
	dir  string
	opts Options
	log  *slog.Logger

	commitMu sync.Mutex // held by Commit, which writes the cursor outside mu
	mu       sync.Mutex
	closed   bool
	w        segment // the last segment, written at wOff
	wSeg     uint64
	wOff     int64
	sizes    map[uint64]int64 // bytes of each segment on disk
	total    int64
	lastSync time.Time
	notify   chan struct{} // closed and replaced on every append

	r      *os.File // segment being read
	rSeg   uint64
	read   Pos
	commit Pos
	meta   []byte

	writeIdx, readIdx, commitIdx uint64
}

// Open opens or creates the spool in dir, restoring the cursor and cutting
// off a torn tail of the last segment.
func Open(dir string, opts Options, log *slog.Logger) (*Spool, error) {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 1 << 30
	}
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = 8 << 20
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	s := &Spool{dir: dir, opts: opts, log: log, sizes: map[uint64]int64{}, notify: make(chan struct{})}
	cur, err := readCursor(filepath.Join(dir, cursorName))
	if err != nil {
		return nil, err
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, err
	}
	for _, seg := range segs {
		if seg < cur.Seg {
			if err := os.Remove(s.segPath(seg)); err != nil {
				return nil, fmt.Errorf("spool: remove acked segment: %w", err)
			}
			continue
		}
		fi, err := os.Stat(s.segPath(seg))
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		s.sizes[seg] = fi.Size()
	}
	if len(s.sizes) == 0 {
		seg := max(cur.Seg, 1)
		cur.Pos = Pos{Seg: seg}
		s.sizes[seg] = 0
	}
	for seg := range s.sizes {
		s.wSeg = max(s.wSeg, seg)
	}
	if cur.Seg == 0 {
		cur.Pos = Pos{Seg: s.minSeg()}
	}
	// Cut a torn or corrupt tail of the last segment.
	good, n, err := scanSegment(s.segPath(s.wSeg), 0)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	if good != s.sizes[s.wSeg] {
		log.Warn("spool: cutting torn tail", "segment", s.wSeg, "valid_bytes", good, "file_bytes", s.sizes[s.wSeg])
	}
	s.w, err = openSegment(s.segPath(s.wSeg), os.O_CREATE|os.O_WRONLY)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := s.w.Truncate(good); err != nil {
		s.w.Close()
		return nil, fmt.Errorf("spool: truncate: %w", err)
	}
	s.sizes[s.wSeg] = good
	s.wOff = good
	for _, size := range s.sizes {
		s.total += size
	}
	// A cursor past the valid data (the data was lost with a power cut but
	// the cursor was not) is clamped to the end.
	if cur.Seg > s.wSeg || (cur.Seg == s.wSeg && cur.Off > s.wOff) {
		cur.Pos = Pos{Seg: s.wSeg, Off: s.wOff}
	}
	s.commit, s.read, s.meta = cur.Pos, cur.Pos, cur.Meta
	// Count pending records for the gauge and the drained check.
	n = 0
	for seg := cur.Seg; seg <= s.wSeg; seg++ {
		from := int64(0)
		if seg == cur.Seg {
			from = cur.Off
		}
		_, c, err := scanSegment(s.segPath(seg), from)
		if err != nil && !os.IsNotExist(err) {
			return nil, err
		}
		n += c
	}
	s.writeIdx = n
	s.lastSync = time.Now()
	return s, nil
}

func (s *Spool) minSeg() uint64 {
	m := s.wSeg
	for seg := range s.sizes {
		m = min(m, seg)
	}
	return m
}

func (s *Spool) segPath(seg uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d%s", seg, segSuffix))
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	return segs, nil
}

func readCursor(path string) (cursorFile, error) {
	var c cursorFile
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("spool: cursor: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("spool: cursor %s: %w", path, err)
	}
	return c, nil
}

// scanSegment walks the records of a segment from offset from and returns
// the offset after the last valid one and how many valid ones it saw.
func scanSegment(path string, from int64) (good int64, n uint64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	off := from
	var hdr [headerLen]byte
	buf := make([]byte, 0, 4096)
	for {
		if _, err := f.ReadAt(hdr[:], off); err != nil {
			return off, n, nil
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		if size > maxRecord {
			return off, n, nil
		}
		if cap(buf) < int(size) {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := f.ReadAt(buf, off+headerLen); err != nil {
			return off, n, nil
		}
		if crc32.Checksum(buf, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, n, nil
		}
		off += headerLen + int64(size)
		n++
	}
}

// Append stores data at the end of the log. It returns ErrFull when the
// spool holds MaxBytes.
func (s *Spool) Append(data []byte) error {
	if len(data) > maxRecord {
		return fmt.Errorf("spool: record of %d bytes exceeds %d", len(data), maxRecord)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	need := int64(headerLen + len(data))
	if s.total+need > s.opts.MaxBytes {
		return ErrFull
	}
	if s.wOff > 0 && s.wOff+need > s.opts.SegmentBytes {
		if err := s.roll(); err != nil {
			return err
		}
	}
	buf := make([]byte, headerLen+len(data))
	binary.LittleEndian.PutUint32(buf[0:4], uint32(len(data)))
	binary.LittleEndian.PutUint32(buf[4:8], crc32.Checksum(data, castagnoli))
	copy(buf[headerLen:], data)
	// Records are written at wOff, not at the file's offset: after a failed
	// (say, half) write the next record overwrites the torn bytes, whether
	// or not they could be cut off. The reader never reads past wOff, and
	// Open cuts a torn tail.
	if _, err := s.w.WriteAt(buf, s.wOff); err != nil {
		if terr := s.w.Truncate(s.wOff); terr != nil {
			s.log.Warn("spool: cannot cut a failed append; the next one overwrites it", "segment", s.wSeg, "offset", s.wOff, "err", terr)
		}
		return fmt.Errorf("spool: append: %w", err)
	}
	s.wOff += need
	s.sizes[s.wSeg] = s.wOff
	s.total += need
	s.writeIdx++
	if s.opts.SyncInterval == 0 || time.Since(s.lastSync) >= s.opts.SyncInterval {
		if err := s.w.Sync(); err != nil {
			return fmt.Errorf("spool: fsync: %w", err)
		}
		s.lastSync = time.Now()
	}
	close(s.notify)
	s.notify = make(chan struct{})
	return nil
}

func (s *Spool) roll() error {
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("spool: fsync: %w", err)
	}
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("spool: close segment: %w", err)
	}
	next := s.wSeg + 1
	f, err := openSegment(s.segPath(next), os.O_CREATE|os.O_WRONLY|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("spool: new segment: %w", err)
	}
	s.w, s.wSeg, s.wOff = f, next, 0
	s.sizes[next] = 0
	return syncDir(s.dir)
}

// Next returns the record after the last one read, waiting for one to be
// appended when the reader has caught up.
func (s *Spool) Next(ctx context.Context) (Record, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return Record{}, ErrClosed
		}
		rec, ok, err := s.readLocked()
		wait := s.notify
		s.mu.Unlock()
		if err != nil || ok {
			return rec, err
		}
		select {
		case <-ctx.Done():
			return Record{}, ctx.Err()
		case <-wait:
		}
	}
}

// readLocked reads the record at s.read; ok is false at the end of the log.
func (s *Spool) readLocked() (Record, bool, error) {
	for {
		if s.read.Seg == s.wSeg && s.read.Off >= s.wOff {
			return Record{}, false, nil
		}
		if s.read.Off >= s.sizes[s.read.Seg] {
			// End of a finished segment: go on with the next one.
			s.read = Pos{Seg: s.read.Seg + 1}
			continue
		}
		if s.r == nil || s.rSeg != s.read.Seg {
			if s.r != nil {
				s.r.Close()
			}
			f, err := os.Open(s.segPath(s.read.Seg))
			if err != nil {
				s.r = nil
				return Record{}, false, fmt.Errorf("spool: open segment: %w", err)
			}
			s.r, s.rSeg = f, s.read.Seg
		}
		var hdr [headerLen]byte
		if _, err := s.r.ReadAt(hdr[:], s.read.Off); err != nil {
			return Record{}, false, fmt.Errorf("spool: read header at %d:%d: %w", s.read.Seg, s.read.Off, err)
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		end := s.read.Off + headerLen + int64(size)
		if size > maxRecord || end > s.sizes[s.read.Seg] {
			s.log.Error("spool: corrupt record, skipping rest of segment", "segment", s.read.Seg, "offset", s.read.Off)
			s.read.Off = s.sizes[s.read.Seg]
			continue
		}
		data := make([]byte, size)
		if _, err := s.r.ReadAt(data, s.read.Off+headerLen); err != nil {
			return Record{}, false, fmt.Errorf("spool: read record at %d:%d: %w", s.read.Seg, s.read.Off, err)
		}
		if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			s.log.Error("spool: checksum mismatch, skipping record", "segment", s.read.Seg, "offset", s.read.Off)
			s.read.Off = end
			continue
		}
		s.read.Off = end
		s.readIdx++
		return Record{Data: data, End: s.read, index: s.readIdx}, true, nil
	}
}

// Rewind moves the reader back to the committed cursor, so every record not
// yet committed is read again.
func (s *Spool) Rewind() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.read, s.readIdx = s.commit, s.commitIdx
}

// Commit records that every record up to and including rec is done, with
// meta stored beside the cursor, and deletes segments wholly behind it.
// Committing a record at or before the current cursor only updates meta.
func (s *Spool) Commit(rec Record, meta []byte) error {
	// The cursor is written and fsynced outside mu: appends and reads go on
	// meanwhile, so a drain after an outage is not paced by the disk's
	// fsync latency. commitMu keeps commits in order.
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	pos, idx := s.commit, s.commitIdx
	s.mu.Unlock()
	if rec.End.Seg > pos.Seg || (rec.End.Seg == pos.Seg && rec.End.Off > pos.Off) {
		pos, idx = rec.End, max(idx, rec.index)
	}
	b, err := json.Marshal(cursorFile{Pos: pos, Meta: meta})
	if err != nil {
		return fmt.Errorf("spool: cursor: %w", err)
	}
	if err := writeAtomic(s.dir, cursorName, b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commit, s.commitIdx, s.meta = pos, idx, append([]byte(nil), meta...)
	for seg := range s.sizes {
		if seg < pos.Seg {
			if err := os.Remove(s.segPath(seg)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("spool: remove segment: %w", err)
			}
			s.total -= s.sizes[seg]
			delete(s.sizes, seg)
		}
	}
	return nil
}

// Meta returns the blob stored with the last commit (or found at Open).
func (s *Spool) Meta() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.meta...)
}

// Stats returns the records not yet committed and the bytes on disk.
func (s *Spool) Stats() (pending uint64, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeIdx - s.commitIdx, s.total
}

// Unread returns the records appended but not yet read.
func (s *Spool) Unread() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writeIdx - s.readIdx
}

// Scan calls fn with every record not yet committed, in order, without
// moving the reader. The agent uses it at start to find where its sequence
// numbers stopped.
func (s *Spool) Scan(fn func(data []byte) error) error {
	s.mu.Lock()
	from, last, lastEnd := s.commit, s.wSeg, s.wOff
	s.mu.Unlock()
	for seg := from.Seg; seg <= last; seg++ {
		f, err := os.Open(s.segPath(seg))
		if err != nil {
			return fmt.Errorf("spool: scan: %w", err)
		}
		off := int64(0)
		if seg == from.Seg {
			off = from.Off
		}
		end := lastEnd
		if seg != last {
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				return fmt.Errorf("spool: scan: %w", err)
			}
			end = fi.Size()
		}
		var hdr [headerLen]byte
		for off+headerLen <= end {
			if _, err := f.ReadAt(hdr[:], off); err != nil {
				break
			}
			size := binary.LittleEndian.Uint32(hdr[0:4])
			if size > maxRecord || off+headerLen+int64(size) > end {
				break
			}
			data := make([]byte, size)
			if _, err := f.ReadAt(data, off+headerLen); err != nil {
				break
			}
			off += headerLen + int64(size)
			if crc32.Checksum(data, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
				continue
			}
			if err := fn(data); err != nil {
				f.Close()
				return err
			}
		}
		f.Close()
	}
	return nil
}

// Close fsyncs and closes the files; it is safe to call twice. It does
// not wait for anything but the disk.
func (s *Spool) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	close(s.notify)
	s.notify = make(chan struct{})
	var errs []error
	if err := s.w.Sync(); err != nil {
		errs = append(errs, fmt.Errorf("spool: fsync: %w", err))
	}
	if err := s.w.Close(); err != nil {
		errs = append(errs, fmt.Errorf("spool: close: %w", err))
	}
	if s.r != nil {
		s.r.Close()
	}
	return errors.Join(errs...)
}

func writeAtomic(dir, name string, b []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("spool: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool: fsync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: fsync dir: %w", err)
	}
	return nil
}
