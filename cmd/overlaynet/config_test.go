package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
)

// The example conflist (deploy/overlaynet.conflist) names no plugin key:
// the plugin's defaults are overlayd's, as `overlayd --help` prints them.
func TestExampleConflistUsesOverlaydDefaults(t *testing.T) {
	b, err := os.ReadFile("../../deploy/overlaynet.conflist")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		CNIVersion string           `json:"cniVersion"`
		Name       string           `json:"name"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("deploy/overlaynet.conflist: %v", err)
	}
	if list.CNIVersion != "1.0.0" || len(list.Plugins) == 0 || list.Plugins[0]["type"] != "overlaynet" || len(list.Plugins[0]) != 1 {
		t.Fatalf("example conflist: %s", b)
	}
	entry := list.Plugins[0]
	entry["cniVersion"], entry["name"] = list.CNIVersion, list.Name
	stdin, _ := json.Marshal(entry)
	c, err := loadConf(&skel.CmdArgs{StdinData: stdin})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), "overlayd"), "status", "--help")
	cmd.Env = []string{"PATH=/usr/bin:/bin"} // no OVERLAYD_* variables
	help, _ := cmd.CombinedOutput()
	for flag, got := range map[string]string{"state-dir": c.StateDir, "store": c.Store, "netns-dir": c.NetNSDir} {
		m := regexp.MustCompile(`(?s)-` + flag + ` string\n[^\n]*\(default "([^"]*)"\)`).FindSubmatch(help)
		if m == nil {
			t.Fatalf("overlayd --help has no default for --%s:\n%s", flag, help)
		}
		if string(m[1]) != got {
			t.Errorf("plugin default for --%s is %q, overlayd's %q", flag, got, m[1])
		}
	}
	if !strings.Contains(string(help), "state-dir") {
		t.Fatalf("help: %s", help)
	}
}
