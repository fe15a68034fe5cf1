// Package nstest gives tests throwaway network namespaces and the rules for
// privileged tests: skip when not root, except in CI (CI=true), where a test
// that cannot run fails instead.
package nstest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

// Prefix starts the name of every namespace the tests create, so leaks are
// easy to spot (`ip netns list | grep ^ovt`).
const Prefix = "ovt"

var counter atomic.Uint32

// RequireRoot skips t unless the process is root with the tools the
// integration tests need; when CI=true it fails instead of skipping. Under
// qemu-user (see Emulated) it always skips: the test needs a live kernel.
func RequireRoot(t testing.TB) {
	t.Helper()
	RequireLiveKernel(t)
	var why string
	switch {
	case os.Geteuid() != 0:
		why = "needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)"
	default:
		if _, err := exec.LookPath("ip"); err != nil {
			why = "needs iproute2 (`ip`) to read back state"
		}
	}
	if why == "" {
		return
	}
	Unavailable(t, why)
}

// QEMUUserEnv names the variable the Makefile sets (to 1) when it runs the
// tests of another architecture under qemu-user.
const QEMUUserEnv = "OVERLAYNET_QEMU_USER"

// RequireLiveKernel skips t, also when CI=true, if the tests run under
// qemu-user (Emulated): its translation of netlink between the emulated
// architecture and the kernel's is incomplete, so a test that talks to the
// kernel would fail for qemu's reasons, not the code's.
func RequireLiveKernel(t testing.TB) {
	t.Helper()
	if why, ok := Emulated(); ok {
		t.Skipf("skipping: needs a live kernel; %s", why)
	}
}

// Emulated reports whether the tests run under qemu-user, with the reason:
// both the Makefile's QEMUUserEnv is set and the test binary's architecture
// (runtime.GOARCH) is not the kernel's (/proc/sys/kernel/arch, which qemu-user
// does not translate, unlike uname). Either alone is not enough: the variable
// on a native machine of that architecture, or a foreign binary run without
// the Makefile, runs the live tests.
func Emulated() (string, bool) {
	if os.Getenv(QEMUUserEnv) != "1" {
		return "", false
	}
	b, err := os.ReadFile("/proc/sys/kernel/arch")
	if err != nil {
		return "", false
	}
	karch := strings.TrimSpace(string(b))
	if archMatches(runtime.GOARCH, karch) {
		return "", false
	}
	return fmt.Sprintf("under qemu-user (GOARCH=%s on a %s kernel) netlink translation is incomplete", runtime.GOARCH, karch), true
}

// archMatches reports whether a kernel whose arch sysctl reads karch runs
// GOARCH goarch binaries natively.
func archMatches(goarch, karch string) bool {
	switch goarch {
	case "amd64":
		return karch == "x86_64"
	case "386":
		return karch == "x86_64" || strings.HasPrefix(karch, "i") && strings.HasSuffix(karch, "86")
	case "arm64":
		return karch == "aarch64" || karch == "arm64"
	case "arm":
		return strings.HasPrefix(karch, "arm") || karch == "aarch64"
	case "mips", "mipsle":
		return karch == "mips"
	case "mips64", "mips64le":
		return karch == "mips64"
	case "ppc64", "ppc64le", "s390x", "riscv64", "loong64":
		return karch == goarch
	}
	return karch == goarch
}

// RequireTools calls Unavailable unless every named binary is on PATH.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Unavailable(t, "needs "+tool+" (scripts/setup.sh installs it)")
		}
	}
}

// Unavailable skips t because of why, except when CI=true, where it fails.
func Unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("privileged test cannot run in CI: %s", why)
	}
	t.Skipf("skipping: %s", why)
}

// UniqueName returns a fresh name starting with Prefix and tag, short enough
// to double as an interface name when tag is at most 4 bytes.
func UniqueName(tag string) string {
	return fmt.Sprintf("%s%s%d%d", Prefix, tag, os.Getpid()%100000, counter.Add(1))
}

// NetNS creates a named network namespace in rtnl.DefaultNetNSDir with a
// unique name (visible to `ip netns`), brings its loopback up, and deletes it
// when the test ends, also on failure.
func NetNS(t testing.TB, tag string) (*rtnl.NetNS, string) {
	t.Helper()
	RequireRoot(t)
	name := UniqueName(tag)
	SweepStale()
	if err := ownNetNS(name); err != nil {
		t.Fatalf("netns %s: %v", name, err)
	}
	ns, err := rtnl.CreateNetNS("", name)
	if err != nil {
		disown(name)
		t.Fatalf("create netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := rtnl.DeleteNetNS("", name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
		disown(name)
	})
	Run(t, name, "ip", "link", "set", "lo", "up")
	return ns, name
}

// Run runs a command inside the named namespace (ip -n style, through
// `ip netns exec`) and returns its standard output; a failure fails the test.
func Run(t testing.TB, netns string, name string, args ...string) string {
	t.Helper()
	out, err := Output(netns, name, args...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// Output runs a command inside the named namespace (or in the current one if
// netns is "") and returns its standard output, or an error carrying stderr.
func Output(netns string, name string, args ...string) (string, error) {
	argv := append([]string{name}, args...)
	if netns != "" {
		argv = append([]string{"nsenter", "--net=" + filepath.Join(rtnl.DefaultNetNSDir, netns)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// DialContext connects to addr from the network namespace at path (as an
// http.Transport's or a gRPC dialer, reaching a server that listens there).
func DialContext(ctx context.Context, path, network, addr string) (net.Conn, error) {
	ns, err := rtnl.OpenNetNS(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	var c net.Conn
	err = ns.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Dial opens an rtnl.Conn in ns and closes it when the test ends.
func Dial(t testing.TB, ns *rtnl.NetNS) *rtnl.Conn {
	t.Helper()
	c, err := rtnl.Dial(&rtnl.Config{NetNS: ns})
	if err != nil {
		t.Fatalf("dial rtnl: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
