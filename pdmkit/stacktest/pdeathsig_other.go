//go:build !linux

package stacktest

import "os/exec"

func dieWithTest(*exec.Cmd) {}
