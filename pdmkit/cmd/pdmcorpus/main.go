// Command pdmcorpus writes the generated corpus of pdmkit/corpus as CSV
// files, for `scorer backtest` and the quality benchmark: healthy streams,
// set-point changes and degradations, each with an index line saying its
// warm-up and where its change lies.
//
//	pdmcorpus -out DIR
//
// writes DIR/{healthy,setpoint,degradation}/NAME.csv (timestamp, the
// sensors, and an anomaly column for degradations) and DIR/index.jsonl.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pdmstream/pdm/pdmkit/corpus"
)

// entry is one line of index.jsonl.
type entry struct {
	File    string `json:"file"`
	Name    string `json:"name"`
	Set     string `json:"set"`
	Step    string `json:"step"`
	Warmup  int    `json:"warmup_rows"`
	Change  int    `json:"change_row"`  // -1: none
	Failure int    `json:"failure_row"` // -1: none
	Rows    int    `json:"rows"`
}

func main() {
	out := flag.String("out", "", "folder to write (required)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: pdmcorpus -out DIR")
		os.Exit(2)
	}
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "pdmcorpus:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	sets := map[string][]corpus.Stream{
		"healthy":  corpus.Healthy(),
		"setpoint": corpus.SetPoints(),
		"degradation": {corpus.Wear(2500, 3500, -1), corpus.Wear(1500, 3900, -1), corpus.Ramp(2500, 3500, 10),
			corpus.Ramp(2000, 3900, 8), corpus.Wear(2100, 3300, 2000)},
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	idx, err := os.Create(filepath.Join(dir, "index.jsonl"))
	if err != nil {
		return err
	}
	defer idx.Close()
	enc := json.NewEncoder(idx)
	for _, set := range []string{"healthy", "setpoint", "degradation"} {
		if err := os.MkdirAll(filepath.Join(dir, set), 0o755); err != nil {
			return err
		}
		for _, s := range sets[set] {
			file := filepath.Join(set, strings.NewReplacer("/", "_", "=", "-", "σ", "sd").Replace(s.Name)+".csv")
			if err := writeCSV(filepath.Join(dir, file), s); err != nil {
				return err
			}
			if err := enc.Encode(entry{File: file, Name: s.Name, Set: set, Step: s.Step.String(), Warmup: s.Warmup,
				Change: s.Change, Failure: s.Failure, Rows: len(s.Rows)}); err != nil {
				return err
			}
		}
	}
	return idx.Close()
}

func writeCSV(path string, s corpus.Stream) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString("timestamp")
	for _, name := range s.Sensors {
		w.WriteString("," + name)
	}
	if s.Labels != nil {
		w.WriteString(",anomaly")
	}
	w.WriteString("\n")
	for i, row := range s.Rows {
		w.WriteString(s.Times[i].Format(time.RFC3339))
		for _, v := range row {
			w.WriteString("," + strconv.FormatFloat(v, 'g', -1, 64))
		}
		if s.Labels != nil {
			if s.Labels[i] {
				w.WriteString(",1")
			} else {
				w.WriteString(",0")
			}
		}
		w.WriteString("\n")
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
