package main

import (
	"encoding/json"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// TestInstallCNI: install-cni puts the plugin (executable, the same bytes)
// and a conflist naming it with the store, state and netns directories
// into the runtime's directories, leaving no temporary file, and records
// both; run again it replaces them. removeInstalled removes exactly those
// files, but one changed since, which it leaves, and then the record.
func TestInstallCNI(t *testing.T) {
	dir := t.TempDir()
	bin, conf, state := filepath.Join(dir, "bin"), filepath.Join(dir, "net.d"), filepath.Join(dir, "state")
	for _, d := range []string{bin, conf} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	plugin := filepath.Join(dir, "plugin-src")
	if err := os.WriteFile(plugin, []byte("#!plugin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(conf, "99-other.conflist"), []byte("{}"), 0o644)
	install := func() {
		t.Helper()
		out, err := exec.Command(overlaydBinary(t), "install-cni", "--plugin="+plugin, "--bin-dir="+bin, "--conf-dir="+conf,
			"--store=kube:", "--state-dir="+state, "--netns-dir=/run/netns").CombinedOutput()
		if err != nil {
			t.Fatalf("install-cni: %v\n%s", err, out)
		}
	}
	install()
	install()
	if fi, err := os.Stat(filepath.Join(bin, "overlaynet")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("plugin: %v %v, want mode 0755", fi, err)
	}
	var c struct {
		CNIVersion, Name string
		Plugins          []map[string]string
	}
	b, err := os.ReadFile(filepath.Join(conf, "10-overlaynet.conflist"))
	if err != nil || json.Unmarshal(b, &c) != nil {
		t.Fatalf("conflist %s: %v", b, err)
	}
	want := map[string]string{"type": "overlaynet", "store": "kube:", "stateDir": state, "netnsDir": "/run/netns"}
	if c.Name != "overlaynet" || len(c.Plugins) != 1 || !maps.Equal(c.Plugins[0], want) {
		t.Errorf("conflist %+v, want one overlaynet plugin %v", c, want)
	}
	for _, d := range []string{bin, conf} {
		ents, _ := os.ReadDir(d)
		for _, e := range ents {
			if e.Name()[0] == '.' {
				t.Errorf("temporary file left: %s", filepath.Join(d, e.Name()))
			}
		}
	}
	// The operator changed the conflist: it stays; the plugin goes.
	if err := os.WriteFile(filepath.Join(conf, "10-overlaynet.conflist"), []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := removeInstalled(state, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	left := func(d string) []string {
		ents, _ := os.ReadDir(d)
		var out []string
		for _, e := range ents {
			out = append(out, e.Name())
		}
		return out
	}
	if got := left(bin); len(got) != 0 {
		t.Errorf("bin dir holds %v, want nothing", got)
	}
	if got := left(conf); !slices.Equal(got, []string{"10-overlaynet.conflist", "99-other.conflist"}) {
		t.Errorf("conf dir holds %v, want the changed conflist and the other one", got)
	}
	if got := left(state); len(got) != 0 {
		t.Errorf("state dir holds %v, want nothing", got)
	}
}
