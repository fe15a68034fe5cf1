//go:build amd64 || arm64 || riscv64 || ppc64 || ppc64le || s390x

package dirstore

import "golang.org/x/sys/unix"

// fstatTrap is the fstat call that fills a unix.Stat_t on this
// architecture, for raw calls (unix.Fstat's own).
const fstatTrap = unix.SYS_FSTAT
