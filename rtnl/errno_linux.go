package rtnl

import "syscall"

// On Linux a reply's error number is the system's own.

func errnoFromLinux(n uint32) syscall.Errno { return syscall.Errno(n) }

func linuxErrno(e syscall.Errno) (uint32, bool) { return uint32(e), e != 0 }
