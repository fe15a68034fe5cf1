//go:build 386 || arm || mips || mipsle || ppc || sparc64

package dirstore

import "golang.org/x/sys/unix"

// fstatTrap is the fstat call that fills a unix.Stat_t on this
// architecture, for raw calls (unix.Fstat's own).
const fstatTrap = unix.SYS_FSTAT64
