package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var got []string
	cmds := map[string]Command{
		"ok":   func(_ context.Context, args []string) error { got = args; return nil },
		"fail": func(context.Context, []string) error { return errors.New("boom") },
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"ok", "-x", "1"}, 0, ""},
		{[]string{"fail"}, 1, "tool: boom"},
		{[]string{"nope"}, 2, "commands: [fail healthcheck ok]"},
		{nil, 2, "usage: tool <command>"},
	} {
		var stderr bytes.Buffer
		if code := Run(context.Background(), "tool", cmds, tc.args, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("%v: code %d, stderr %q; want %d, %q", tc.args, code, stderr.String(), tc.code, tc.stderr)
		}
	}
	if strings.Join(got, " ") != "-x 1" {
		t.Errorf("args passed: %v", got)
	}
	t.Setenv("PDM_HTTP_ADDR", "127.0.0.1:1")
	if code := Run(context.Background(), "tool", cmds, []string{"healthcheck"}, &bytes.Buffer{}); code != 1 {
		t.Errorf("healthcheck of a closed port: code %d", code)
	}
}
