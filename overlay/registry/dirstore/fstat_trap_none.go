//go:build !(amd64 || arm64 || riscv64 || ppc64 || ppc64le || s390x || 386 || arm || mips || mipsle || ppc || sparc64)

package dirstore

// fstatTrap is 0 where unix.Fstat converts the kernel's struct (mips64,
// loong64): a store there reads with ordinary calls only.
const fstatTrap = 0
