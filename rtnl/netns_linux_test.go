package rtnl_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

func TestValidateNetNSName(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../x", "nul\x00", strings.Repeat("n", 256)} {
		if err := rtnl.ValidateNetNSName(name); err == nil {
			t.Errorf("ValidateNetNSName(%q) accepted a bad name", name)
		}
	}
	for _, name := range []string{"overns", "pink", "a.b", strings.Repeat("n", 255)} {
		if err := rtnl.ValidateNetNSName(name); err != nil {
			t.Errorf("ValidateNetNSName(%q): %v", name, err)
		}
	}
}

// TestNetNSLifecycleInCustomDir creates, uses, lists and deletes a named
// namespace in a directory of its own, as a simulated node does.
func TestNetNSLifecycleInCustomDir(t *testing.T) {
	nstest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "netns")
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	name := nstest.UniqueName("ln")

	ns, err := rtnl.CreateNetNS(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close(); rtnl.DeleteNetNS(dir, name) })

	if _, err := rtnl.CreateNetNS(dir, name); !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second create: %v, want EEXIST", err)
	}
	names, err := rtnl.ListNetNS(dir)
	if err != nil || len(names) != 1 || names[0] != name {
		t.Fatalf("ListNetNS = %v, %v; want [%s]", names, err, name)
	}

	// The namespace is a fresh one: a link created in it is invisible here.
	c := nstest.Dial(t, ns)
	if err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeLink("brx")); err != nil {
		t.Fatal(err)
	}
	out, err := nstest.Output("", "nsenter", "--net="+filepath.Join(dir, name), "ip", "-o", "link")
	if err != nil || !strings.Contains(out, "brx") {
		t.Fatalf("nsenter into the namespace: %v\n%s", err, out)
	}
	if _, err := os.Stat("/sys/class/net/brx"); err == nil {
		t.Fatalf("brx visible in the test's own namespace")
	}

	// Do runs inside and returns the thread to where it was.
	before, _ := os.Readlink("/proc/thread-self/ns/net")
	var inside string
	if err := ns.Do(func() error {
		inside, _ = os.Readlink("/proc/thread-self/ns/net")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Readlink("/proc/thread-self/ns/net")
	if inside == before || after != before {
		t.Fatalf("Do: before %s, inside %s, after %s", before, inside, after)
	}

	if err := rtnl.DeleteNetNS(dir, name); err != nil {
		t.Fatal(err)
	}
	if err := rtnl.DeleteNetNS(dir, name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("second delete: %v, want ErrNotExist", err)
	}
}

// TestNetNSVisibleToIproute2 checks that a namespace made in the default
// directory works with `ip netns exec`, like one made by `ip netns add`.
func TestNetNSVisibleToIproute2(t *testing.T) {
	_, name := nstest.NetNS(t, "ip")
	out := nstest.Run(t, "", "ip", "netns", "exec", name, "ip", "-o", "link", "show", "lo")
	if !strings.Contains(out, "lo:") || !strings.Contains(out, "UP") {
		t.Fatalf("ip netns exec %s: %q, want lo up", name, out)
	}
}
