package nstest

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// TestEmulatedNeedsBoth: the qemu-user skip applies only when the Makefile's
// variable is set AND the binary's architecture is not the kernel's; either
// alone leaves live-kernel tests running (and failing in CI when they
// cannot run).
func TestEmulatedNeedsBoth(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		t.Skipf("no /proc/sys/kernel/arch: %v", err)
	}
	karch := strings.TrimSpace(string(b))
	native := archMatches(runtime.GOARCH, karch)

	t.Setenv(QEMUUserEnv, "")
	if why, ok := Emulated(); ok {
		t.Errorf("without %s: Emulated() = %q, true", QEMUUserEnv, why)
	}
	t.Setenv(QEMUUserEnv, "1")
	why, ok := Emulated()
	if ok == native {
		t.Errorf("GOARCH=%s on a %s kernel with %s=1: Emulated() = %q, %v; want %v", runtime.GOARCH, karch, QEMUUserEnv, why, ok, !native)
	}
	if ok && !strings.Contains(why, "GOARCH="+runtime.GOARCH) {
		t.Errorf("reason %q does not name the architecture", why)
	}
}

func TestArchMatches(t *testing.T) {
	for _, tt := range []struct {
		goarch, karch string
		want          bool
	}{
		{"amd64", "x86_64", true},
		{"386", "x86_64", true},
		{"arm64", "aarch64", true},
		{"arm", "armv7l", true},
		{"arm", "aarch64", true},
		{"mips", "mips", true},
		{"mipsle", "mips", true},
		{"s390x", "s390x", true},
		{"ppc64le", "ppc64le", true},
		{"s390x", "x86_64", false},
		{"ppc64", "x86_64", false},
		{"mips", "x86_64", false},
		{"amd64", "aarch64", false},
		{"riscv64", "x86_64", false},
	} {
		if got := archMatches(tt.goarch, tt.karch); got != tt.want {
			t.Errorf("archMatches(%s, %s) = %v, want %v", tt.goarch, tt.karch, got, tt.want)
		}
	}
}
