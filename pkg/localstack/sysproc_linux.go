package localstack

import "syscall"

// sysProcAttr makes the kernel kill the child when its parent dies, and puts
// it in its own process group so a terminal's Ctrl-C reaches only us (we then
// stop it in order).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
