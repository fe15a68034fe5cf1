package nstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

// TestSweepStale: a namespace whose recorded owner process is gone is
// deleted with its record; one whose owner lives, or that has no record, is
// left alone.
func TestSweepStale(t *testing.T) {
	RequireRoot(t)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(owner int, record bool) string {
		name := UniqueName("sw")
		ns, err := rtnl.CreateNetNS("", name)
		if err != nil {
			t.Fatal(err)
		}
		ns.Close()
		t.Cleanup(func() { rtnl.DeleteNetNS("", name); disown(name) })
		if record {
			if err := os.MkdirAll(OwnersDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(OwnersDir, name), []byte(strconv.Itoa(owner)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return name
	}
	stale := mk(dead.Process.Pid, true)
	live := mk(os.Getppid(), true)
	unrecorded := mk(0, false)
	SweepStale()
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(rtnl.DefaultNetNSDir, name))
		return err == nil
	}
	if exists(stale) {
		t.Errorf("%s of a dead process not deleted", stale)
	}
	if _, err := os.Stat(filepath.Join(OwnersDir, stale)); err == nil {
		t.Errorf("record of %s not removed", stale)
	}
	if !exists(live) || !exists(unrecorded) {
		t.Errorf("a live process's (%s) or an unrecorded (%s) namespace deleted", live, unrecorded)
	}
}
