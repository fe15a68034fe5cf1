package rtnl_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

// TestErrnoFromLinux: a reply's Linux error number becomes this system's
// syscall.Errno and back, and the numbers every Linux architecture shares
// are the ones on the wire.
func TestErrnoFromLinux(t *testing.T) {
	for _, c := range []struct {
		errno syscall.Errno
		linux uint32 // 0: only the round trip is checked (the number differs on some Linux architectures)
	}{
		{syscall.ENOENT, 2}, {syscall.EEXIST, 17}, {syscall.ENODEV, 19}, {syscall.EINVAL, 22},
		{syscall.ENOBUFS, 0}, {syscall.EOPNOTSUPP, 0}, {syscall.EAFNOSUPPORT, 0}, {syscall.EADDRNOTAVAIL, 0},
	} {
		n, ok := rtnl.LinuxErrno(c.errno)
		if !ok || (c.linux != 0 && n != c.linux) {
			t.Errorf("LinuxErrno(%v) = %d, %v; want %d", c.errno, n, ok, c.linux)
		}
		if back := rtnl.ErrnoFromLinux(n); back != c.errno || !errors.Is(back, c.errno) {
			t.Errorf("ErrnoFromLinux(%d) = %v, want %v", n, back, c.errno)
		}
	}
	if _, ok := rtnl.LinuxErrno(0); ok {
		t.Error("LinuxErrno(0) has a number: 0 is no error")
	}
}
