//go:build !linux

package rtnl

import "syscall"

// linuxErrnos maps the Linux error numbers (asm-generic, as on amd64 and
// arm64) of the errors rtnetlink reports to this system's syscall.Errno (a
// function, not a variable: the table is a constant).
func linuxErrnos() [126]syscall.Errno {
	return [...]syscall.Errno{
		1: syscall.EPERM, 2: syscall.ENOENT, 3: syscall.ESRCH, 4: syscall.EINTR, 5: syscall.EIO,
		6: syscall.ENXIO, 7: syscall.E2BIG, 8: syscall.ENOEXEC, 9: syscall.EBADF, 10: syscall.ECHILD,
		11: syscall.EAGAIN, 12: syscall.ENOMEM, 13: syscall.EACCES, 14: syscall.EFAULT, 16: syscall.EBUSY,
		17: syscall.EEXIST, 18: syscall.EXDEV, 19: syscall.ENODEV, 20: syscall.ENOTDIR, 21: syscall.EISDIR,
		22: syscall.EINVAL, 23: syscall.ENFILE, 24: syscall.EMFILE, 25: syscall.ENOTTY, 27: syscall.EFBIG,
		28: syscall.ENOSPC, 29: syscall.ESPIPE, 30: syscall.EROFS, 31: syscall.EMLINK, 32: syscall.EPIPE,
		33: syscall.EDOM, 34: syscall.ERANGE, 35: syscall.EDEADLK, 36: syscall.ENAMETOOLONG,
		37: syscall.ENOLCK, 38: syscall.ENOSYS, 39: syscall.ENOTEMPTY, 40: syscall.ELOOP,
		71: syscall.EPROTO, 75: syscall.EOVERFLOW, 84: syscall.EILSEQ, 88: syscall.ENOTSOCK,
		89: syscall.EDESTADDRREQ, 90: syscall.EMSGSIZE, 91: syscall.EPROTOTYPE, 92: syscall.ENOPROTOOPT,
		93: syscall.EPROTONOSUPPORT, 95: syscall.EOPNOTSUPP, 97: syscall.EAFNOSUPPORT,
		98: syscall.EADDRINUSE, 99: syscall.EADDRNOTAVAIL, 100: syscall.ENETDOWN, 101: syscall.ENETUNREACH,
		102: syscall.ENETRESET, 103: syscall.ECONNABORTED, 104: syscall.ECONNRESET, 105: syscall.ENOBUFS,
		106: syscall.EISCONN, 107: syscall.ENOTCONN, 110: syscall.ETIMEDOUT, 111: syscall.ECONNREFUSED,
		113: syscall.EHOSTUNREACH, 114: syscall.EALREADY, 115: syscall.EINPROGRESS, 125: syscall.ECANCELED,
	}
}

func errnoFromLinux(n uint32) syscall.Errno {
	if t := linuxErrnos(); n < uint32(len(t)) && t[n] != 0 {
		return t[n]
	}
	return syscall.Errno(n)
}

func linuxErrno(e syscall.Errno) (uint32, bool) {
	for n, le := range linuxErrnos() {
		if le == e && le != 0 {
			return uint32(n), true
		}
	}
	return 0, false
}
