package grafana

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// promKeywords are PromQL words that are not metric names: operators,
// modifiers and the aggregations, which may be followed by "by (...)"
// rather than by their parenthesis. The ones followed by a parenthesised
// label list are in promLabelLists.
var promKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "offset": true, "and": true, "or": true, "unless": true, "atan2": true, "inf": true, "nan": true,
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true, "count": true,
	"count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true, "limit_ratio": true,
}

var promLabelLists = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}

// PromMetrics returns, sorted and once each, the metric names a PromQL
// expression selects: identifiers that are not functions, keywords or
// labels. Label matchers ({...}), ranges ([...]), strings and Grafana's
// $variables are skipped. An unbalanced bracket is an error.
func PromMetrics(expr string) ([]string, error) {
	seen := map[string]bool{}
	rs := []rune(expr)
	skipSpace := func(i int) int {
		for i < len(rs) && (rs[i] == ' ' || rs[i] == '\t' || rs[i] == '\n' || rs[i] == '\r') {
			i++
		}
		return i
	}
	// closing returns the index just past the bracket that closes the one
	// at i, skipping strings.
	closing := func(i int) (int, error) {
		open, shut := rs[i], map[rune]rune{'{': '}', '[': ']', '(': ')'}[rs[i]]
		depth := 0
		for j := i; j < len(rs); j++ {
			switch c := rs[j]; {
			case c == '"' || c == '\'' || c == '`':
				end := stringEnd(rs, j)
				if end < 0 {
					return 0, fmt.Errorf("promql %q: unterminated string", expr)
				}
				j = end
			case c == open:
				depth++
			case c == shut:
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("promql %q: %c at %d is not closed", expr, open, i)
	}
	depth := 0
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := stringEnd(rs, i)
			if end < 0 {
				return nil, fmt.Errorf("promql %q: unterminated string", expr)
			}
			i = end + 1
		case c == '{' || c == '[':
			end, err := closing(i)
			if err != nil {
				return nil, err
			}
			i = end
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("promql %q: ) at %d has no (", expr, i)
			}
			i++
		case c == '}' || c == ']':
			return nil, fmt.Errorf("promql %q: %c at %d has no opening bracket", expr, c, i)
		case c == '$':
			i++
			for i < len(rs) && (isIdent(rs[i], false) || rs[i] == '{' || rs[i] == '}') {
				i++
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(rs) && (isIdent(rs[i], false) || rs[i] == '.') {
				i++
			}
		case isIdent(c, true):
			j := i
			for j < len(rs) && isIdent(rs[j], false) {
				j++
			}
			word := string(rs[i:j])
			next := skipSpace(j)
			switch {
			case promLabelLists[strings.ToLower(word)]:
				if next < len(rs) && rs[next] == '(' {
					end, err := closing(next)
					if err != nil {
						return nil, err
					}
					j = end
				}
			case promKeywords[strings.ToLower(word)]:
			case next < len(rs) && rs[next] == '(':
				// A function or an aggregation.
			default:
				seen[word] = true
			}
			i = j
		default:
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("promql %q: unbalanced parentheses", expr)
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out, nil
}

func isIdent(c rune, first bool) bool {
	if c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
		return true
	}
	return !first && c >= '0' && c <= '9'
}

// stringEnd returns the index of the quote closing the string that opens
// at i, or -1.
func stringEnd(rs []rune, i int) int {
	q := rs[i]
	for j := i + 1; j < len(rs); j++ {
		if rs[j] == '\\' && q != '`' {
			j++
			continue
		}
		if rs[j] == q {
			return j
		}
	}
	return -1
}

// FluxRef is what one Flux query reads of InfluxDB.
type FluxRef struct {
	// Measurement is the one measurement the query filters on.
	Measurement string
	// Fields are the field names compared with == or !=.
	Fields []string
	// FieldPatterns are the regular expressions fields are matched with.
	FieldPatterns []*regexp.Regexp
	// Columns are the other names it reads: r.<name> and the columns of
	// group, keep, distinct, pivot and selectors. Each is a tag or a field
	// (after a pivot); names starting with _ are InfluxDB's own and left out.
	Columns []string
}

var (
	fluxMeasurement = regexp.MustCompile(`r(?:\._measurement|\["_measurement"\])\s*==\s*"([^"]+)"`)
	fluxField       = regexp.MustCompile(`r(?:\._field|\["_field"\])\s*(?:==|!=)\s*"([^"]+)"`)
	fluxFieldRegex  = regexp.MustCompile(`r(?:\._field|\["_field"\])\s*(?:=~|!~)\s*/((?:[^/\\]|\\.)*)/`)
	fluxRecordKey   = regexp.MustCompile(`\br(?:\.([A-Za-z_][A-Za-z0-9_]*)|\["([^"]+)"\])`)
	fluxColumnList  = regexp.MustCompile(`\b(?:columns|rowKey|columnKey)\s*:\s*\[([^\]]*)\]`)
	fluxColumn      = regexp.MustCompile(`\bcolumn\s*:\s*"([^"]+)"`)
	fluxString      = regexp.MustCompile(`"([^"]*)"`)
	fluxFrom        = regexp.MustCompile(`\bfrom\s*\(\s*bucket\s*:`)
)

// FluxRefs returns what a Flux query reads. A query must read from a
// bucket and name exactly one measurement, so each name it reads belongs to
// one measurement's schema.
func FluxRefs(q string) (FluxRef, error) {
	if !fluxFrom.MatchString(q) {
		return FluxRef{}, fmt.Errorf("flux: no from(bucket: ...) in %q", q)
	}
	var ms []string
	for _, m := range fluxMeasurement.FindAllStringSubmatch(q, -1) {
		if !slices.Contains(ms, m[1]) {
			ms = append(ms, m[1])
		}
	}
	if len(ms) != 1 {
		return FluxRef{}, fmt.Errorf("flux: want one measurement (r._measurement == \"...\"), found %q in %q", ms, q)
	}
	ref := FluxRef{Measurement: ms[0]}
	fields, cols := map[string]bool{}, map[string]bool{}
	for _, m := range fluxField.FindAllStringSubmatch(q, -1) {
		fields[m[1]] = true
	}
	for _, m := range fluxFieldRegex.FindAllStringSubmatch(q, -1) {
		re, err := regexp.Compile(m[1])
		if err != nil {
			return FluxRef{}, fmt.Errorf("flux: field pattern /%s/: %w", m[1], err)
		}
		ref.FieldPatterns = append(ref.FieldPatterns, re)
	}
	for _, m := range fluxRecordKey.FindAllStringSubmatch(q, -1) {
		cols[m[1]+m[2]] = true
	}
	for _, m := range fluxColumnList.FindAllStringSubmatch(q, -1) {
		for _, s := range fluxString.FindAllStringSubmatch(m[1], -1) {
			cols[s[1]] = true
		}
	}
	for _, m := range fluxColumn.FindAllStringSubmatch(q, -1) {
		cols[m[1]] = true
	}
	for f := range fields {
		ref.Fields = append(ref.Fields, f)
	}
	for c := range cols {
		if !strings.HasPrefix(c, "_") {
			ref.Columns = append(ref.Columns, c)
		}
	}
	sort.Strings(ref.Fields)
	sort.Strings(ref.Columns)
	return ref, nil
}

// Measurement is what is written to one measurement: its tag and field
// names.
type Measurement struct {
	Tags, Fields map[string]bool
}

// Check returns an error naming each of the query's fields, field patterns
// and columns that m does not have: a field compared by name must be a
// field, a pattern must match at least one field, a column must be a tag
// or a field.
func (r FluxRef) Check(m Measurement) error {
	var missing []string
	for _, f := range r.Fields {
		if !m.Fields[f] {
			missing = append(missing, "field "+f)
		}
	}
	for _, re := range r.FieldPatterns {
		if !slices.ContainsFunc(keys(m.Fields), re.MatchString) {
			missing = append(missing, "a field matching /"+re.String()+"/")
		}
	}
	for _, c := range r.Columns {
		if !m.Tags[c] && !m.Fields[c] {
			missing = append(missing, "tag or field "+c)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s has no %s (tags %v, fields %v)", r.Measurement, strings.Join(missing, ", "), keys(m.Tags), keys(m.Fields))
	}
	return nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
