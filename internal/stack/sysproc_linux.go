package stack

import "syscall"

// sysProcAttr puts a service in its own process group and has the kernel
// kill it if the stockcast process dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
