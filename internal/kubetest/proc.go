package kubetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a component's process: started by the lab, logging to a file of
// the test's, stopped by its pid and reaped.
type proc struct {
	name   string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// startProc starts argv with stdout and stderr appended to logPath.
func startProc(name, logPath string, argv []string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group: a ^C to the test does not reach it before
	// the cleanup stops it in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kubetest: start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	return p, nil
}

// pid returns the process's ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits until it is reaped.
func (p *proc) stop(grace time.Duration) {
	if p == nil || !p.running() {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return
	case <-time.After(grace):
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// exitErr describes how the process ended, with its log's tail.
func (p *proc) exitErr() error {
	return fmt.Errorf("kubetest: %s exited (%v):\n%s", p.name, p.cmd.ProcessState, tail(p.log, 30))
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// logTails returns the tail of every *.log file under dir, for a failed
// test's output.
func logTails(dir string, n int) string {
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && strings.HasSuffix(p, ".log") {
			fmt.Fprintf(&b, "==== %s (last %d lines)\n%s\n", p, n, tail(p, n))
		}
		return nil
	})
	return b.String()
}

// waitFor polls cond every interval until it returns nil or timeout passes;
// it returns the last error. A non-nil stop error ends it at once.
func waitFor(timeout, interval time.Duration, cond func() (stop, err error)) error {
	deadline := time.Now().Add(timeout)
	for {
		stop, err := cond()
		if stop != nil {
			return stop
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		time.Sleep(interval)
	}
}

// Process is a program a test runs on a node as one of the node's own (in
// its network and mount namespaces and its cgroup), as a DaemonSet's
// container would run it; it logs to NAME.log in the node's directory
// (printed when the test fails) and is stopped when the test ends, before
// the node is.
type Process struct {
	p *proc
}

// Start starts argv on the node (for an environment, start env(1)) and
// returns once it is in the node's namespaces and cgroup.
func (n *Node) Start(t testing.TB, name string, argv ...string) *Process {
	t.Helper()
	if len(argv) == 0 || strings.ContainsAny(name, "/ ") || name == "" {
		t.Fatalf("kubetest: Start(%q, %q): want a plain name and a command", name, argv)
	}
	p, err := startProc(n.Name+" "+name, filepath.Join(n.Dir, name+".log"), n.cgroupJoin(append(n.nsenter(), argv...)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.stop(10 * time.Second) })
	// It starts as a shell joining the cgroup, then nsenter: in once its
	// mount namespace is the node's (nsenter execs argv right after).
	nodeMnt, _ := os.Readlink(n.MountNS())
	err = waitFor(5*time.Second, 5*time.Millisecond, func() (error, error) {
		if !p.running() {
			return nil, nil
		}
		if mnt, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", p.pid())); mnt != nodeMnt {
			return nil, fmt.Errorf("%s not in the node's mount namespace", name)
		}
		return nil, nil
	})
	if err != nil {
		t.Fatalf("kubetest: %s: %v", n.Name, err)
	}
	return &Process{p: p}
}

// Pid returns the process's ID.
func (p *Process) Pid() int { return p.p.pid() }

// Running reports whether it has not exited.
func (p *Process) Running() bool { return p.p.running() }

// Exited is closed once the process has exited and been reaped.
func (p *Process) Exited() <-chan struct{} { return p.p.exited }

// Stop sends SIGTERM, then SIGKILL after 10 s, and waits until it exited.
func (p *Process) Stop() { p.p.stop(10 * time.Second) }

// Kill kills it (SIGKILL), as a crash would, and waits until it exited.
func (p *Process) Kill() {
	if p.p.running() {
		p.p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.p.exited
	}
}

// Log returns the path of its log (standard output and error).
func (p *Process) Log() string { return p.p.log }
