package dirstore

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"golang.org/x/sys/unix"
)

// fileCalls are the system calls a Store reads its records with.
type fileCalls uint8

const (
	// ordinaryCalls go through the runtime's syscall bookkeeping, which
	// gives the calling thread's processor to other goroutines while a
	// call waits: the calls of a store on a network or user-space
	// filesystem (NFS, FUSE...), where a call may wait on a server for as
	// long as it is down.
	ordinaryCalls fileCalls = iota
	// rawCalls are made with unix.RawSyscall, outside that bookkeeping:
	// the calls of a store on a local filesystem (tmpfs, ext4, xfs...),
	// which return in microseconds (a cold read waits for the local disk).
	// A lookup is on the path of a miss, and the first ordinary call after
	// the daemon was idle wakes the runtime's monitor thread (sysmon), one
	// more thread to schedule beside the miss's own (see package rtnl's
	// socket).
	rawCalls
)

func (c fileCalls) String() string {
	switch c {
	case ordinaryCalls:
		return "ordinary"
	case rawCalls:
		return "raw"
	}
	return fmt.Sprintf("fileCalls(%d)", uint8(c))
}

// localFilesystem says whether a filesystem, by its statfs magic number,
// is one whose calls never wait on anything but memory or a local disk.
func localFilesystem(magic uint32) bool {
	switch magic {
	case unix.TMPFS_MAGIC, unix.RAMFS_MAGIC, unix.EXT4_SUPER_MAGIC, // ext2 and ext3 too
		unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC, unix.F2FS_SUPER_MAGIC:
		return true
	}
	return false
}

// callsFor returns the calls a store rooted at root reads with: raw ones
// on a local filesystem, ordinary ones elsewhere, when statfs fails, and on
// an architecture without a raw fstat (fstatTrap).
func callsFor(root string) fileCalls {
	var st unix.Statfs_t
	if err := unix.Statfs(root, &st); err != nil || fstatTrap == 0 {
		return ordinaryCalls
	}
	if localFilesystem(uint32(st.Type)) {
		return rawCalls
	}
	return ordinaryCalls
}

// Every call below converts its pointers to uintptr in the call
// expression of unix.Syscall6 or unix.RawSyscall6 themselves (functions
// implemented in assembly), never through a Go function between: only
// there does the compiler keep the object in place, and a record's path and
// value buffers are on the goroutine's stack, which a Go call's stack
// growth would move from under the kernel.

// pathMax is the room for a record's path on the stack: a longer one is
// copied to the heap.
const pathMax = 256

// open opens path (no NUL byte) read-only without following a symbolic
// link and without blocking on a FIFO.
func (c fileCalls) open(path []byte) (int, error) {
	var buf [pathMax]byte
	var p *byte
	if len(path) < len(buf) {
		copy(buf[:], path)
		p = &buf[0] // NUL-terminated: buf is zeroed
	} else {
		z := make([]byte, len(path)+1)
		copy(z, path)
		p = &z[0]
	}
	cwd := unix.AT_FDCWD
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOFOLLOW | unix.O_NOCTTY | unix.O_LARGEFILE
	for {
		var fd uintptr
		var errno unix.Errno
		if c == rawCalls {
			fd, _, errno = unix.RawSyscall6(unix.SYS_OPENAT, uintptr(cwd), uintptr(unsafe.Pointer(p)), flags, 0, 0, 0)
		} else {
			fd, _, errno = unix.Syscall6(unix.SYS_OPENAT, uintptr(cwd), uintptr(unsafe.Pointer(p)), flags, 0, 0, 0)
		}
		switch errno {
		case 0:
			return int(fd), nil
		case unix.EINTR:
			continue
		}
		return -1, errno
	}
}

func (c fileCalls) fstat(fd int, st *unix.Stat_t) error {
	if c != rawCalls {
		return unix.Fstat(fd, st)
	}
	if _, _, errno := unix.RawSyscall(fstatTrap, uintptr(fd), uintptr(unsafe.Pointer(st)), 0); errno != 0 {
		return errno
	}
	return nil
}

func (c fileCalls) read(fd int, b []byte) (int, error) {
	var n uintptr
	var errno unix.Errno
	if c == rawCalls {
		n, _, errno = unix.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	} else {
		n, _, errno = unix.Syscall(unix.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	}
	if errno != 0 {
		return 0, errno
	}
	return int(n), nil
}

func (c fileCalls) close(fd int) {
	if c == rawCalls {
		unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
		return
	}
	unix.Close(fd) //nolint:errcheck // a read-only file: nothing to lose
}

// readValue reads a one-value file, without its trailing newline, with
// ordinary calls (see readValueMaxWith).
func readValue(path string) (string, error) { return readValueMax(path, registry.MaxValueLen) }

// readValueMax is readValue for values of up to max bytes (at most
// registry.MaxMemberLen).
func readValueMax(path string, max int) (string, error) {
	return readValueMaxWith(ordinaryCalls, path, max)
}

// readValueMaxWith reads a one-value file of up to max bytes (at most
// registry.MaxMemberLen), without its trailing newline, with the calls c.
// It uses plain syscalls (open, fstat, read, close) rather than
// os.ReadFile: a lookup is on the resolver's path, and os.File's poller
// registration costs more than the read itself.
//
// The store is read as root from a directory others may write to: a symlink
// is not followed (O_NOFOLLOW: a link to a root-only file must not be read
// on anyone's behalf), and anything but a regular file is refused (a FIFO
// is opened without blocking and then refused; device nodes need root to
// make).
func readValueMaxWith(c fileCalls, path string, max int) (string, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return "", fmt.Errorf("dirstore: open %q: %w", path, unix.EINVAL)
	}
	v, _, err := readRecord(c, []byte(path), max)
	return v, err
}

// readRecord is readValueMaxWith of a path (without a NUL byte) given as
// bytes: a lookup builds it on its stack. Errors name it cleaned. only says
// whether the file has no other hard link than p (a cache keeps no other:
// an edit through another link raises no event on p's directory).
func readRecord(c fileCalls, p []byte, max int) (v string, only bool, err error) {
	fd, err := c.open(p)
	if err != nil {
		path := filepath.Clean(string(p))
		switch {
		case errors.Is(err, unix.ENOENT):
			return "", false, fmt.Errorf("%w: %s", registry.ErrNotFound, path)
		case errors.Is(err, unix.ELOOP):
			return "", false, notRecord(path, registry.ReasonUnreadable, "is a symbolic link (not followed)")
		}
		return "", false, fmt.Errorf("dirstore: open %s: %w", path, err)
	}
	defer c.close(fd)
	var st unix.Stat_t
	if err := c.fstat(fd, &st); err != nil {
		return "", false, fmt.Errorf("dirstore: stat %s: %w", filepath.Clean(string(p)), err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", false, notRecord(filepath.Clean(string(p)), registry.ReasonUnreadable, "is a "+fileType(st.Mode)+", not a regular file")
	}
	var arr [registry.MaxMemberLen + 1]byte
	buf := arr[:min(max, registry.MaxMemberLen)+1]
	n := 0
	for n < len(buf) {
		m, err := c.read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", false, fmt.Errorf("dirstore: read %s: %w", filepath.Clean(string(p)), err)
		}
		if m == 0 {
			break
		}
		n += m
		if n < len(buf) && buf[n-1] == '\n' {
			// A short read of a regular file ends at its end, and a record
			// is one line: the read that would return 0 is not needed.
			break
		}
	}
	if n > len(buf)-1 {
		return "", false, notRecord(filepath.Clean(string(p)), registry.ReasonOversized, fmt.Sprintf("is longer than %d bytes", len(buf)-1))
	}
	v = string(buf[:n])
	v = strings.TrimSuffix(v, "\n")
	v = strings.TrimSuffix(v, "\r")
	return v, st.Nlink == 1, nil
}

// fileType names the type in a stat mode, for errors.
func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return fmt.Sprintf("file of type %#o", mode&unix.S_IFMT)
}

// readMAC reads the MAC the record file at p holds, with s's calls; only
// as readRecord's.
func (s *Store) readMAC(p []byte) (mac ethaddr.MAC, only bool, err error) {
	v, only, err := readRecord(s.calls, p, registry.MaxValueLen)
	if err != nil {
		return ethaddr.MAC{}, false, err
	}
	if m, err := ethaddr.Parse(v); err == nil {
		return m, only, nil // the path's text only for an error
	}
	mac, err = parseMAC(filepath.Clean(string(p)), v)
	return mac, false, err
}

// readAddr reads the address the record file at p holds, with s's calls;
// only as readRecord's.
func (s *Store) readAddr(p []byte) (addr netip.Addr, only bool, err error) {
	v, only, err := readRecord(s.calls, p, registry.MaxValueLen)
	if err != nil {
		return netip.Addr{}, false, err
	}
	if a, err := netip.ParseAddr(v); err == nil {
		return a, only, nil // the path's text only for an error
	}
	addr, err = parseAddr(filepath.Clean(string(p)), v)
	return addr, false, err
}

// arpPathTo appends the path of ip's record to b (see arpPath).
func (s *Store) arpPathTo(b []byte, ip netip.Addr) ([]byte, error) {
	if err := registry.CheckKeyIP(ip); err != nil {
		return b, err
	}
	b = append(append(b, s.root...), "/"+arpDir+"/"...)
	return ip.AppendTo(b), nil
}

// fdbPathTo appends the path of m's record to b (see fdbPath).
func (s *Store) fdbPathTo(b []byte, m ethaddr.MAC) []byte {
	b = append(append(b, s.root...), "/"+fdbDir+"/"...)
	b, _ = m.AppendText(b)
	return b
}
