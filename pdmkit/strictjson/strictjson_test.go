package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestUnmarshal(t *testing.T) {
	type body struct {
		A int            `json:"a"`
		M map[string]int `json:"m"`
		L []struct {
			B string `json:"b"`
		} `json:"l"`
	}
	for _, tc := range []struct {
		in   string
		fail string // "" when it must decode
	}{
		{`{"a":1,"m":{"x":1,"y":2},"l":[{"b":"p"},{"b":"q"}]}`, ""},
		{`{"m":{"a":1},"a":2}`, ""}, // the same key in different objects
		{`{"a":1,"a":2}`, `key "a" given twice`},
		{`{"m":{"x":1,"x":2}}`, `key "x" given twice`},
		{`{"a":1,"\u0061":2}`, `key "a" given twice`},
		{`{"m":{"x\"":1,"x":2}}`, ""}, // a quote inside a key
		{`{"m":{"x":1, "y" : 2 ,"x" :3}}`, `key "x" given twice`},
		{`{"l":[{"b":"p"},{"b":"q","b":"r"}]}`, `key "b" given twice`},
		{`{"a":1,"c":2}`, `unknown field "c"`},
		{`{"a":1} {"a":2}`, ErrTrailing.Error()},
		{`{"a":1} }`, ErrTrailing.Error()}, // the decoder's More is false here
		{`{"a":1}]`, ErrTrailing.Error()},
		{`{"a":`, "unexpected EOF"},
		{``, io.EOF.Error()},
	} {
		var b body
		err := Unmarshal([]byte(tc.in), &b)
		switch {
		case tc.fail == "" && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case tc.fail != "" && (err == nil || !strings.Contains(err.Error(), tc.fail)):
			t.Errorf("%s: got %v, want an error with %q", tc.in, err, tc.fail)
		}
	}
	if err := Unmarshal(nil, new(body)); !errors.Is(err, io.EOF) {
		t.Errorf("empty body: %v, want io.EOF", err)
	}
}

func TestDuplicateKeyDepth(t *testing.T) {
	in := []byte(`{"v":1,"readings":[{"x":1,"x":2}]}`)
	if k, ok := DuplicateKey(in, 1); ok {
		t.Errorf("depth 1 looked into the array's objects: %q", k)
	}
	if k, ok := DuplicateKey(in, -1); !ok || k != "x" {
		t.Errorf("every level: got %q %v, want x", k, ok)
	}
	if k, ok := DuplicateKey([]byte(`{"v":1,"v":1,"readings":[]}`), 1); !ok || k != "v" {
		t.Errorf("depth 1: got %q %v, want v", k, ok)
	}
}

// BenchmarkDuplicateKey is the cost of the check beside decoding the same
// body (the baseline): an inference request of 10,000 rows.
func BenchmarkDuplicateKey(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"inputs":[{"name":"x","shape":[10000],"datatype":"FP64","data":[`)
	for i := range 10000 {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("12.345678")
	}
	sb.WriteString(`]}]}`)
	data := []byte(sb.String())
	var v struct {
		Inputs []struct {
			Name     string    `json:"name"`
			Shape    []int     `json:"shape"`
			Datatype string    `json:"datatype"`
			Data     []float64 `json:"data"`
		} `json:"inputs"`
	}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if err := Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("duplicate-key-only", func(b *testing.B) {
		for b.Loop() {
			DuplicateKey(data, -1)
		}
	})
}

// FuzzDuplicateKey checks the byte scanner against a reference that walks
// the decoder's tokens, on every valid JSON value.
func FuzzDuplicateKey(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `{"a":{"b":[{"c":1},{"c":1,"c":2}]}}`, `["a","a"]`, `{"a\"b":1,"a\u0022b":2}`, `{"k":"x:y","k2":":"}`} {
		f.Add([]byte(s), -1)
		f.Add([]byte(s), 1)
	}
	f.Fuzz(func(t *testing.T, data []byte, depth int) {
		if !json.Valid(data) {
			DuplicateKey(data, depth) // must not panic
			return
		}
		depth = max(depth%4, -1)
		_, got := DuplicateKey(data, depth)
		if want := referenceDuplicate(data, depth); got != want {
			t.Fatalf("DuplicateKey(%q, %d) = %v, reference %v", data, depth, got, want)
		}
	})
}

// referenceDuplicate is DuplicateKey by the decoder's tokens: slow, plain.
func referenceDuplicate(data []byte, maxDepth int) bool {
	type frame struct {
		keys     map[string]bool
		object   bool
		wantsKey bool
	}
	var stack []*frame
	objects := 0
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		tok, err := dec.Token()
		if err != nil {
			return false
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			f := &frame{object: tok == json.Delim('{'), wantsKey: tok == json.Delim('{')}
			if f.object {
				objects++
				if maxDepth < 0 || objects <= maxDepth {
					f.keys = map[string]bool{}
				}
			}
			stack = append(stack, f)
			continue
		case json.Delim('}'), json.Delim(']'):
			if top.object {
				objects--
			}
			stack = stack[:len(stack)-1]
		default:
			if top != nil && top.wantsKey {
				k := tok.(string)
				if top.keys != nil && top.keys[k] {
					return true
				}
				if top.keys != nil {
					top.keys[k] = true
				}
				top.wantsKey = false
				continue
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].wantsKey = true
		}
	}
}
