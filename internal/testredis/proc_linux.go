package testredis

import "syscall"

// sysProcAttr makes the kernel kill a redis-server child when the test
// binary dies without running its cleanups (a -timeout panic, os.Exit), so
// that no server outlives the tests that started it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
