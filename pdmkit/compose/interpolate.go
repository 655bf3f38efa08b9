package compose

import (
	"fmt"
	"strings"
)

// Interpolate expands variables the way Compose does in its files: $$ is a
// literal $, $VAR and ${VAR} are the value (empty when unset),
// ${VAR:-default} / ${VAR-default} fall back when VAR is unset or empty /
// unset, and ${VAR:?message} / ${VAR?message} are errors in those cases.
func Interpolate(s string, lookup func(string) (string, bool)) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			continue
		}
		switch next := s[i+1]; {
		case next == '$':
			b.WriteByte('$')
			i++
		case next == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", fmt.Errorf("unclosed ${ at offset %d", i)
			}
			v, err := expand(s[i+2:i+end], lookup)
			if err != nil {
				return "", err
			}
			b.WriteString(v)
			i += end
		case isNameByte(next, true):
			j := i + 1
			for j < len(s) && isNameByte(s[j], j == i+1) {
				j++
			}
			v, _ := lookup(s[i+1 : j])
			b.WriteString(v)
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// expand resolves the inside of ${...}.
func expand(expr string, lookup func(string) (string, bool)) (string, error) {
	n := 0
	for n < len(expr) && isNameByte(expr[n], n == 0) {
		n++
	}
	name, op := expr[:n], expr[n:]
	if name == "" {
		return "", fmt.Errorf("invalid variable ${%s}", expr)
	}
	v, set := lookup(name)
	switch {
	case op == "":
		return v, nil
	case strings.HasPrefix(op, ":-"):
		if v == "" {
			return op[2:], nil
		}
	case strings.HasPrefix(op, "-"):
		if !set {
			return op[1:], nil
		}
	case strings.HasPrefix(op, ":?"):
		if v == "" {
			return "", fmt.Errorf("%s: %s", name, op[2:])
		}
	case strings.HasPrefix(op, "?"):
		if !set {
			return "", fmt.Errorf("%s: %s", name, op[1:])
		}
	default:
		return "", fmt.Errorf("invalid variable ${%s}", expr)
	}
	return v, nil
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}
