package ociarchive

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/nstest"
)

// removeCgroupTree removes /NAME and everything below it in every cgroup
// hierarchy, deepest first.
func removeCgroupTree(t *testing.T, name string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + name)
	var dirs []string
	for _, r := range roots {
		filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// testArchives writes the archives the importers are tried on: one image
// (as make image writes), and two images with other configs, and returns
// each archive's path with what each of its images prints when run.
func testArchives(t *testing.T) map[string]map[string]string {
	t.Helper()
	dir := t.TempDir()
	one, two := filepath.Join(dir, "one.tar"), filepath.Join(dir, "two.tar")
	if err := WriteFile(one, testImage(t, "overlaynet/test:v1")); err != nil {
		t.Fatal(err)
	}
	first := testImage(t, "registry.example/overlaynet/first")
	first.Config.Cmd = []string{"echo first"}
	second := testImage(t, "registry.example/overlaynet/second:v2")
	second.Config = Config{Entrypoint: []string{"/bin/sh", "-c", "echo second"}}
	if err := WriteFile(two, first, second); err != nil {
		t.Fatal(err)
	}
	return map[string]map[string]string{
		one: {"docker.io/overlaynet/test:v1": "hello from the archive"},
		two: {"registry.example/overlaynet/first:latest": "first", "registry.example/overlaynet/second:v2": "second"},
	}
}

// TestContainerdImport: containerd 1.6's `ctr images import` takes the
// archive (both images, named from the index) and runs them as their
// configs say (entrypoint, cmd, both layers). The containerd is the test's
// own (its root, state and socket in the test's directory, in a mount
// namespace of its own so its mounts go with it, in a netns of the test's).
func TestContainerdImport(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "containerd", "ctr", "runc", "unshare")
	archives := testArchives(t)
	_, netns := nstest.NetNS(t, "oc")
	dir := t.TempDir()
	sock := filepath.Join(dir, "c.sock")
	conf := filepath.Join(dir, "config.toml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), sock)), 0o644)
	log, _ := os.Create(filepath.Join(dir, "containerd.log"))
	defer log.Close()
	cmd := exec.Command("nsenter", "--net=/var/run/netns/"+netns, "--",
		"unshare", "--mount", "--propagation", "private", "--", "containerd", "--config", conf)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cgroup := nstest.UniqueName("oc")
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		removeCgroupTree(t, cgroup)
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("containerd log:\n%s", b)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containerd not up: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ctr := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ctr", append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	var all []string
	for archive, images := range archives {
		ctr("images", "import", archive)
		for image, want := range images {
			all = append(all, image)
			id := nstest.UniqueName("c")
			out := ctr("run", "--rm", "--cgroup", "/"+cgroup+"/"+id, image, id)
			if strings.TrimSpace(out) != want {
				t.Errorf("ctr run %s (from %s): %q, want %q", image, filepath.Base(archive), out, want)
			}
		}
	}
	names := strings.Fields(ctr("images", "ls", "-q"))
	sort.Strings(names)
	sort.Strings(all)
	if strings.Join(names, " ") != strings.Join(all, " ") {
		t.Errorf("ctr images ls: %v, want %v", names, all)
	}
}

// TestPodmanLoad: podman 4.3's `podman load` takes the same archive (both
// images, named from manifest.json) and runs them as their configs say.
// The podman is the test's own (storage, run root, config and cgroup
// parent), in a mount namespace with a private /var/lib, where podman
// would otherwise keep its blob-info cache.
func TestPodmanLoad(t *testing.T) {
	nstest.RequireRoot(t)
	nstest.RequireTools(t, "podman", "runc", "unshare")
	archives := testArchives(t)
	dir := t.TempDir()
	conf := filepath.Join(dir, "containers.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[network]
network_backend = "cni"
network_config_dir = %q
[engine]
runtime = "runc"
lock_type = "file"
tmp_dir = %q
`, filepath.Join(dir, "net.d"), filepath.Join(dir, "tmp"))), 0o644)
	cgroup := nstest.UniqueName("op")
	t.Cleanup(func() { removeCgroupTree(t, cgroup) })
	podman := func(args ...string) string {
		t.Helper()
		script := `mount -t tmpfs tmpfs /var/lib && exec podman --root "$0/root" --runroot "$0/runroot" --storage-driver vfs "$@"`
		cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "--", "sh", "-c", script, dir}, args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		podman("rm", "-af")
		podman("rmi", "-af")
	})
	for archive, images := range archives {
		out := podman("load", "-i", archive)
		for image, want := range images {
			if !strings.Contains(out, "Loaded image: "+image) {
				t.Errorf("podman load %s did not load %s:\n%s", filepath.Base(archive), image, out)
			}
			out := podman("run", "--rm", "--network", "none", "--cgroup-parent", "/"+cgroup, image)
			if strings.TrimSpace(out) != want {
				t.Errorf("podman run %s: %q, want %q", image, out, want)
			}
		}
	}
}
