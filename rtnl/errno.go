package rtnl

import "syscall"

// Error numbers in netlink replies are Linux's: an NLMSG_ERROR carries the
// negated errno of the failed request. rtnl reports them as syscall.Errno
// values, so errors.Is(err, syscall.EEXIST) holds for a request that failed
// with EEXIST (on Linux, syscall.EEXIST is the same value).

// ErrnoFromLinux returns the syscall.Errno for n, a Linux error number as a
// netlink reply carries it. On Linux that is syscall.Errno(n) itself.
// Elsewhere the errors rtnetlink reports are translated to the local
// constants, whose numbers differ (ENOBUFS is 105 on Linux, 55 on macOS),
// and other numbers are kept as they are.
func ErrnoFromLinux(n uint32) syscall.Errno { return errnoFromLinux(n) }

// LinuxErrno returns the Linux error number of e, the inverse of
// ErrnoFromLinux: what a fake kernel (package rtnltest) or a relay puts in
// a reply. ok is false for an errno that has no Linux number.
func LinuxErrno(e syscall.Errno) (n uint32, ok bool) { return linuxErrno(e) }
