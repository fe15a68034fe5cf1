package kubetest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMounts returns the mount points of the cgroup hierarchies: every
// v1 hierarchy, and v2 (cgroup2) ones separately.
func cgroupMounts() (v1, v2 []string, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := -1
		for i, s := range fields {
			if s == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+1 >= len(fields) || len(fields) < 5 {
			continue
		}
		switch fields[sep+1] {
		case "cgroup":
			v1 = append(v1, fields[4])
		case "cgroup2":
			v2 = append(v2, fields[4])
		}
	}
	return v1, v2, sc.Err()
}

// nodeCgroup is a node's cgroup: kubelet's cgroupRoot, with the node's
// daemons in its "runtime" child and kubelet's pods beside it. It exists in
// every v1 hierarchy; runc adds it to the v2 one of a hybrid layout.
type nodeCgroup struct {
	path   string // "/ovtk123451": kubelet's cgroupRoot
	v1, v2 []string
}

// newNodeCgroup creates path and path/runtime in every v1 hierarchy
// (cpuset's with its parent's CPUs and memory nodes).
func newNodeCgroup(path string) (*nodeCgroup, error) {
	v1, v2, err := cgroupMounts()
	if err != nil {
		return nil, fmt.Errorf("kubetest: cgroups: %w", err)
	}
	if len(v1) == 0 {
		return nil, fmt.Errorf("kubetest: no cgroup v1 hierarchy mounted (the lab runs kubelet with cgroupfs on cgroup v1)")
	}
	cg := &nodeCgroup{path: path, v1: v1, v2: v2}
	for _, m := range v1 {
		for _, rel := range []string{path, path + "/runtime"} {
			dir := filepath.Join(m, rel)
			if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
				return cg, fmt.Errorf("kubetest: cgroup %s: %w", dir, err)
			}
			if filepath.Base(m) == "cpuset" || strings.Contains(m, "cpuset") {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					b, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f))
					if err != nil {
						return cg, fmt.Errorf("kubetest: cgroup %s: %w", dir, err)
					}
					if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
						return cg, fmt.Errorf("kubetest: cgroup %s: %w", dir, err)
					}
				}
			}
		}
	}
	return cg, nil
}

// procsFiles returns the cgroup.procs files a daemon of the node writes its
// pid to, one per v1 hierarchy.
func (cg *nodeCgroup) procsFiles() []string {
	var files []string
	for _, m := range cg.v1 {
		files = append(files, filepath.Join(m, cg.path, "runtime", "cgroup.procs"))
	}
	return files
}

// pids returns every process in the node's cgroups, in every hierarchy.
func (cg *nodeCgroup) pids() []int {
	seen := map[int]bool{}
	for _, dir := range cg.dirs() {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				seen[pid] = true
			}
		}
	}
	var pids []int
	for pid := range seen {
		pids = append(pids, pid)
	}
	sort.Ints(pids)
	return pids
}

// dirs returns the node's cgroup directories in every hierarchy, deepest
// first.
func (cg *nodeCgroup) dirs() []string {
	var dirs []string
	for _, m := range append(append([]string{}, cg.v1...), cg.v2...) {
		filepath.WalkDir(filepath.Join(m, cg.path), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return strings.Count(dirs[i], "/") > strings.Count(dirs[j], "/") })
	return dirs
}

// remove kills whatever is still in the node's cgroups (container shims and
// containers the runtime left: the lab's own daemons are stopped by pid
// before) and removes the cgroups, deepest first. It returns what it could
// not remove.
func (cg *nodeCgroup) remove() error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cg.pids()
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubetest: cgroup %s: processes %v survive SIGKILL", cg.path, pids)
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var failed []string
	for _, dir := range cg.dirs() {
		var err error
		for range 50 { // a cgroup whose last task just exited can be busy for a moment
			if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
				err = nil
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", dir, err))
		}
	}
	if failed != nil {
		return fmt.Errorf("kubetest: cgroups left: %s", strings.Join(failed, "; "))
	}
	return nil
}
