//go:build !linux

package testredis

import "syscall"

// sysProcAttr is empty where the kernel cannot kill a child with its
// parent: there a test binary that dies without its cleanups leaves its
// redis-server running.
func sysProcAttr() *syscall.SysProcAttr { return nil }
