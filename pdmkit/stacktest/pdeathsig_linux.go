package stacktest

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the server a test starts die with the test process,
// so a test binary that is killed (a timeout, ^C) leaves no broker behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
