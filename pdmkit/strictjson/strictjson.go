// Package strictjson decodes JSON the one strict way the services read
// what clients send: a single value, no field the target does not have,
// no key given twice. A key given twice is read one way by Go (the last
// wins) and another by readers that keep the first, so a body or a
// reading that passes a check here could mean something else downstream.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ErrTrailing is returned for data after the JSON value.
var ErrTrailing = errors.New("data after the JSON value")

// Unmarshal decodes data into v, refusing unknown fields, a key given
// twice in any object, and trailing data. Empty data is io.EOF.
func Unmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Not dec.More, which is false before a stray "}" or "]".
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return ErrTrailing
	}
	if k, ok := DuplicateKey(data, -1); ok {
		return fmt.Errorf("key %q given twice", clip(k))
	}
	return nil
}

// DuplicateKey returns a key that an object of the JSON value data holds
// twice, looking maxDepth levels of objects deep (-1: every level). data
// should be valid JSON (decode it first; of invalid JSON it may report
// nothing); it is scanned once, without decoding values, so the check
// costs a fraction of the decode.
func DuplicateKey(data []byte, maxDepth int) (string, bool) {
	// One entry per open object or array: the keys seen, nil for an array
	// or an object too deep to check.
	var stack []map[string]bool
	objects := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			objects++
			var keys map[string]bool
			if maxDepth < 0 || objects <= maxDepth {
				keys = map[string]bool{}
			}
			stack = append(stack, keys)
		case '[':
			stack = append(stack, nil)
		case '}', ']':
			if len(stack) == 0 {
				return "", false // not valid JSON
			}
			if data[i] == '}' {
				objects--
			}
			stack = stack[:len(stack)-1]
		case '"':
			start := i
			escaped := false
			for i++; i < len(data) && data[i] != '"'; i++ {
				if data[i] == '\\' {
					escaped = true
					i++
				}
			}
			if len(stack) == 0 || stack[len(stack)-1] == nil || !followedByColon(data, i+1) {
				continue // a value, or a key not checked
			}
			k := string(data[start+1 : i])
			if escaped || !utf8.ValidString(k) {
				// "\u0061" and "a" are the same key, as are two invalid
				// bytes the decoder reads as U+FFFD.
				if err := json.Unmarshal(data[start:i+1], &k); err != nil {
					return "", false
				}
			}
			keys := stack[len(stack)-1]
			if keys[k] {
				return k, true
			}
			keys[k] = true
		}
	}
	return "", false
}

// followedByColon reports whether the next byte after white space at i is
// a colon: the string before i was an object's key.
func followedByColon(data []byte, i int) bool {
	for ; i < len(data); i++ {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ':':
			return true
		}
		return false
	}
	return false
}

// clip shortens a key for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
