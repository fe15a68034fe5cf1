package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/internal/testbin"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// bins are the commands the process benchmarks run, built once per test
// binary as `make build` builds them: overlayd (the shipped daemon) and
// libnetworkd (the libnetwork-way peer in a process of its own). TestMain
// removes them.
var bins = &testbin.Set{Pkgs: map[string]string{"overlayd": "../cmd/overlayd", "libnetworkd": "./cmd/libnetworkd"}}

// binPath returns the path of one of bins, building them on first use.
func binPath(tb testing.TB, name string) string { return filepath.Join(bins.Dir(tb), name) }

// floorBuild is the C floor resolver (testdata/floor.c), compiled once per
// test binary with gcc -O2 into a directory TestMain removes.
var floorBuild struct {
	once sync.Once
	dir  string
	err  error
}

// floorBinary returns the compiled floor resolver.
func floorBinary(tb testing.TB) string {
	tb.Helper()
	f := &floorBuild
	f.once.Do(func() {
		if f.dir, f.err = os.MkdirTemp("", "overlaynet-floor"); f.err != nil {
			return
		}
		out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-o", filepath.Join(f.dir, "floor"), "testdata/floor.c").CombinedOutput()
		if err != nil {
			f.err = fmt.Errorf("gcc testdata/floor.c (scripts/setup.sh installs gcc): %v\n%s", err, out)
		}
	})
	if f.err != nil {
		tb.Fatal(f.err)
	}
	return filepath.Join(f.dir, "floor")
}

// benchNode is a node made as an operator makes one, with the shipped
// binary: a throwaway network namespace (its "host") with an underlay
// device u0 at 192.0.2.2/24, `overlayd create` with the missgen lab's
// overlay subnet (gateway 10.64.0.1/10) and one container attached
// (`overlayd attach`, the missgen lab's MAC and address), its own netns and
// state directories, on the directory store at store. A dual-stack node
// (newDualBenchNode) has the missgen dual-stack lab's IPv6 prefix too
// (gateway 2001:db8:40::1/64, the container at missgen.ContainerIP6) and
// u0 an IPv6 address, 2001:db8::2/64, for IPv6 egress (create's default).
// Everything goes when the benchmark ends (`overlayd reset`, the namespaces
// deleted).
type benchNode struct {
	tb        testing.TB
	netns     string // the node's netns, in rtnl.DefaultNetNSDir
	dir       string // its --netns-dir
	state     string // its --state-dir
	store     string // the directory store's path
	Overlay   *rtnl.NetNS
	Container *rtnl.NetNS
	Vxlan     int32
}

// newBenchNode makes a benchNode on the directory store at store.
func newBenchNode(tb testing.TB, store string) *benchNode {
	tb.Helper()
	return makeBenchNode(tb, store, false)
}

// newDualBenchNode makes a dual-stack benchNode on the directory store at
// store.
func newDualBenchNode(tb testing.TB, store string) *benchNode {
	tb.Helper()
	return makeBenchNode(tb, store, true)
}

func makeBenchNode(tb testing.TB, store string, dual bool) *benchNode {
	tb.Helper()
	nstest.RequireRoot(tb)
	_, name := nstest.NetNS(tb, "bn")
	base := tb.TempDir()
	n := &benchNode{tb: tb, netns: name, dir: filepath.Join(base, "netns"), state: filepath.Join(base, "state"), store: store}
	tb.Cleanup(n.remove)
	nstest.Run(tb, name, "ip", "link", "add", "u0", "type", "veth", "peer", "name", "u1")
	nstest.Run(tb, name, "ip", "addr", "add", "192.0.2.2/24", "dev", "u0")
	nstest.Run(tb, name, "ip", "link", "set", "u0", "up")
	nstest.Run(tb, name, "ip", "link", "set", "u1", "up")
	create := []string{"--local", "192.0.2.2", "--gateway", "10.64.0.1/10"}
	attach := []string{"c1", "--ip", missgen.ContainerIP().String() + "/10", "--mac", missgen.ContainerMAC().String()}
	if dual {
		nstest.Run(tb, name, "ip", "addr", "add", "2001:db8::2/64", "dev", "u0", "nodad")
		p6 := missgen.Prefix6()
		create = append(create, "--gateway", netip.PrefixFrom(p6.Addr().Next(), p6.Bits()).String())
		attach = append(attach, "--ip", netip.PrefixFrom(missgen.ContainerIP6(), p6.Bits()).String())
	}
	n.overlayd("create", create...)
	n.overlayd("attach", attach...)
	var err error
	if n.Overlay, err = rtnl.OpenNamedNetNS(n.dir, "overns"); err != nil {
		tb.Fatal(err)
	}
	if n.Container, err = rtnl.OpenNamedNetNS(n.dir, "c1"); err != nil {
		tb.Fatal(err)
	}
	c := nstest.Dial(tb, n.Overlay)
	l, err := c.LinkByName("vxlan1")
	if err != nil {
		tb.Fatal(err)
	}
	n.Vxlan = l.Index
	return n
}

// overlayd runs `overlayd CMD` with the node's directories and store in
// the node's netns (nsenter --net: the namespaces it creates stay mounted
// in its netns dir); a failure fails the benchmark.
func (n *benchNode) overlayd(cmd string, args ...string) string {
	n.tb.Helper()
	out, err := exec.Command("nsenter", n.overlaydArgs(cmd, args...)...).CombinedOutput()
	if err != nil {
		n.tb.Fatalf("overlayd %s %s: %v\n%s", cmd, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// overlaydArgs is nsenter's command line of `overlayd CMD ARGS` on n.
func (n *benchNode) overlaydArgs(cmd string, args ...string) []string {
	return append([]string{"--net=" + filepath.Join(rtnl.DefaultNetNSDir, n.netns), binPath(n.tb, "overlayd"), cmd,
		"--netns-dir", n.dir, "--state-dir", n.state, "--store", "dir:" + n.store}, args...)
}

// remove resets the node and removes what is left of its namespaces.
func (n *benchNode) remove() {
	for _, ns := range []*rtnl.NetNS{n.Overlay, n.Container} {
		if ns != nil {
			ns.Close()
		}
	}
	if out, err := exec.Command("nsenter", n.overlaydArgs("reset")...).CombinedOutput(); err != nil {
		n.tb.Errorf("overlayd reset: %v\n%s", err, out)
	}
	names, _ := rtnl.ListNetNS(n.dir)
	for _, nm := range names {
		if err := rtnl.DeleteNetNS(n.dir, nm); err != nil {
			n.tb.Errorf("delete leftover netns %s/%s: %v", n.dir, nm, err)
		}
	}
	if err := unix.Unmount(n.dir, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		n.tb.Errorf("unmount %s: %v", n.dir, err)
	}
}

// overlayPath is the overlay namespace's file, for nsenter --net.
func (n *benchNode) overlayPath() string { return filepath.Join(n.dir, "overns") }

// proc is an implementation running in a process of its own, started by
// the benchmark and stopped by its pid.
type proc struct {
	name    string
	cmd     *exec.Cmd
	stderr  lockedBuffer
	exited  chan struct{}
	waitErr error
	// graceful: stop with SIGTERM and expect exit status 0 (the process
	// reports its failures in it); otherwise SIGKILL.
	graceful bool
	stopOnce sync.Once
	stopErr  error
}

// lockedBuffer is a bytes.Buffer written by the process's stderr copier
// and read by the benchmark.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startProc runs argv (nsenter's arguments: the namespace, then the
// command, which nsenter execs: the pid is the command's) and stops it when
// the benchmark ends, if not before.
func startProc(tb testing.TB, name string, graceful bool, argv ...string) *proc {
	tb.Helper()
	p := &proc{name: name, cmd: exec.Command("nsenter", argv...), exited: make(chan struct{}), graceful: graceful}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
		}
		p.waitErr = p.cmd.Wait() // after stdout is drained, as Wait requires
		close(p.exited)
	}()
	tb.Cleanup(func() { p.stop() })
	return p
}

// alive fails tb if the process has exited.
func (p *proc) alive(tb testing.TB) {
	tb.Helper()
	select {
	case <-p.exited:
		tb.Fatalf("%s died: %v\n%s", p.name, p.waitErr, p.stderr.String())
	default:
	}
}

// stop ends the process by its pid (SIGTERM if graceful, else SIGKILL)
// and reaps it. The error says it had died before, did not exit 0 after
// SIGTERM, or ignored it for 10 s.
func (p *proc) stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("%s died before the end: %v\n%s", p.name, p.waitErr, p.stderr.String())
			return
		default:
		}
		if !p.graceful {
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
			return
		}
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			if p.waitErr != nil {
				p.stopErr = fmt.Errorf("%s after SIGTERM: %v\n%s", p.name, p.waitErr, p.stderr.String())
			}
		case <-time.After(10 * time.Second):
			p.cmd.Process.Signal(syscall.SIGKILL)
			<-p.exited
			p.stopErr = fmt.Errorf("%s ignored SIGTERM for 10 s\n%s", p.name, p.stderr.String())
		}
	})
	return p.stopErr
}

// switches returns the context switches (voluntary and not) the process's
// threads have made so far, from /proc/PID/task/*/status.
func (p *proc) switches(tb testing.TB) int64 {
	return p.threadSum(tb, "status", func(b string) (sum int64) {
		for _, line := range strings.Split(b, "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.HasSuffix(k, "ctxt_switches") {
				n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
				sum += n
			}
		}
		return sum
	})
}

// cpu returns the CPU time the process's threads have used so far, from
// /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts in 10 ms
// ticks).
func (p *proc) cpu(tb testing.TB) time.Duration {
	return time.Duration(p.threadSum(tb, "schedstat", func(b string) int64 {
		f := strings.Fields(b)
		if len(f) == 0 {
			return 0
		}
		ns, _ := strconv.ParseInt(f[0], 10, 64)
		return ns
	}))
}

// threadSum adds up what value reads from each of the process's threads'
// /proc/PID/task/TID/file. Threads that exited are not counted: the Go
// runtime keeps its threads, Python and the C floor have one.
func (p *proc) threadSum(tb testing.TB, file string, value func(string) int64) int64 {
	tb.Helper()
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/%s", p.cmd.Process.Pid, file))
	if err != nil || len(tasks) == 0 {
		tb.Fatalf("%s: no threads in /proc: %v", p.name, err)
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just exited
		}
		sum += value(string(b))
	}
	return sum
}
