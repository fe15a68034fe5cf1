package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestMakeInstall: `make install` builds both binaries and puts overlayd in
// PREFIX/bin and the plugin in the CNI plugin directory (here under a
// DESTDIR of the test's own).
func TestMakeInstall(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs make (scripts/setup.sh installs it)")
		}
		t.Skip("skipping: needs make")
	}
	dest := t.TempDir()
	cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, p := range []string{"usr/local/bin/overlayd", "opt/cni/bin/overlaynet"} {
		st, err := os.Stat(filepath.Join(dest, p))
		if err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s: %v (mode %v)", p, err, st)
		}
	}
	// The installed plugin answers VERSION.
	v := exec.Command(filepath.Join(dest, "opt/cni/bin/overlaynet"))
	v.Env = []string{"CNI_COMMAND=VERSION"}
	if out, err := v.Output(); err != nil || len(out) == 0 {
		t.Errorf("installed plugin VERSION: %v %s", err, out)
	}
}
