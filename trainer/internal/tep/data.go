// Package tep runs the Tennessee Eastman benchmark (the Braatz data set)
// the way the trainer trains and the scorer decides: the normal-operation
// file d00.dat is read into a history.Series by the trainer's file reader,
// a model is trained on it by train.Fit (the training job's path), and
// every test file d00_te … d21_te is scored by a monitor.Monitor over
// anomaly.FromArtifact, the live decision. A PCA baseline (Hotelling T²
// and SPE, gonum's stat.PC) is computed in the same run from the same
// rows.
//
// Invariants: nothing but d00.dat trains or calibrates the model, the PCA
// or any threshold the decision uses; the *_te files are only scored. The
// equal-FAR comparison sets one threshold per statistic at the 95th
// percentile of its own d00_te values, the same rule for every method.
package tep

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pdmstream/pdm/trainer/internal/history"
)

// Step is the sampling interval of every file: one row every 3 minutes.
const Step = 3 * time.Minute

// FaultStart is the 0-based index of the first faulty row of a dNN_te
// file: the fault is introduced after 8 hours, so rows 0–159 are normal
// and 160–959 faulty.
const FaultStart = 160

// Faults are the fault numbers of the test files d01_te … d21_te.
const Faults = 21

// Undetectable are the faults known to leave no trace in these variables;
// means are given over the other 18 and over all 21.
var Undetectable = []int{3, 9, 15}

// Variables are the 52 columns: XMEAS(1..41), the process measurements,
// then XMV(1..11), the manipulated variables.
var Variables = func() []string {
	v := make([]string, 0, 52)
	for i := 1; i <= 41; i++ {
		v = append(v, fmt.Sprintf("xmeas_%02d", i))
	}
	for i := 1; i <= 11; i++ {
		v = append(v, fmt.Sprintf("xmv_%02d", i))
	}
	return v
}()

// TestFile is the name of the test file of fault n (0: normal).
func TestFile(n int) string { return fmt.Sprintf("d%02d_te.dat", n) }

// ReadFile reads a Braatz data file into a history.Series with the
// trainer's file reader: row k at k × Step after the Unix epoch, columns
// Variables. A file with one row per sample (52 values a line) is read as
// it is; one stored transposed, 52 lines of one variable each (d00.dat:
// 52 × 500), is turned first.
func ReadFile(path string) (*history.Series, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tep: %w (the Braatz data: github.com/camaramm/tennessee-eastman-profBraatz, files d00.dat and dNN_te.dat)", err)
	}
	asset := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	if b, err = rowMajor(b); err != nil {
		return nil, fmt.Errorf("tep: %s: %w", path, err)
	}
	s, err := history.ReadTable(bytes.NewReader(b), history.FileOptions{Site: "tep", Asset: asset, Columns: Variables, Step: Step})
	if err != nil {
		return nil, fmt.Errorf("tep: %s: %w", path, err)
	}
	return s[0], nil
}

// rowMajor returns the file with one sample per line: as it is when its
// lines hold len(Variables) values, transposed when it has len(Variables)
// lines of another equal length.
func rowMajor(b []byte) ([]byte, error) {
	var lines [][]string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			lines = append(lines, f)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	d := len(Variables)
	if len(lines) == 0 {
		return nil, fmt.Errorf("no data")
	}
	if len(lines[0]) == d {
		return b, nil
	}
	if len(lines) != d {
		return nil, fmt.Errorf("%d lines of %d values: neither %d values a line nor %d lines of one variable each", len(lines), len(lines[0]), d, d)
	}
	n := len(lines[0])
	for i, l := range lines {
		if len(l) != n {
			return nil, fmt.Errorf("transposed file: line %d (variable %s) has %d values, line 1 has %d", i+1, Variables[i], len(l), n)
		}
	}
	var out bytes.Buffer
	out.Grow(len(b) + n)
	for k := range n {
		for j := range d {
			if j > 0 {
				out.WriteByte(' ')
			}
			out.WriteString(lines[j][k])
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), nil
}

// rows returns every row of s in order (the Braatz files have no gaps).
func rows(s *history.Series) [][]float64 {
	var out [][]float64
	for _, sg := range s.Segments {
		for i := range sg.N {
			out = append(out, sg.Row(i))
		}
	}
	return out
}
