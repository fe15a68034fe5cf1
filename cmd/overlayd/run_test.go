package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/resolver"
	"github.com/overlaynet/overlaynet/rtnl"
)

func TestRunUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--reconcile", "0s"}, "--reconcile"},
		{[]string{"run", "--lookup-rate", "0"}, "--lookup-rate"},
		{[]string{"run", "--workers", "0"}, "--workers"},
		{[]string{"run", "--rcvbuf", "-1"}, "--rcvbuf"},
		{[]string{"run", "extra"}, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runMain(t.Context(), c.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), c.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), c.want)
			}
		})
	}
	// Before create: a clear error, exit 1.
	var stdout, stderr bytes.Buffer
	code := runMain(t.Context(), []string{"run", "--state-dir", t.TempDir(), "--store", "dir:" + t.TempDir()}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "create") {
		t.Errorf("run before create: exit %d, stderr %q", code, stderr.String())
	}
}

// daemon is an `overlayd run` running in a simulated node.
type daemon struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.Write(p)
}

func (d *daemon) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.logs.String()
}

// startDaemon starts `overlayd run` in n's netns (nsenter --net, as run
// does) and stops it with SIGTERM at the end of the test.
func (n *simNode) startDaemon(args ...string) *daemon {
	n.t.Helper()
	argv := []string{"--net=" + filepath.Join(rtnl.DefaultNetNSDir, n.name), overlaydBinary(n.t), "run",
		"--netns-dir", n.dir, "--state-dir", n.state, "--store", n.store}
	d := &daemon{cmd: exec.Command("nsenter", append(argv, args...)...), done: make(chan error, 1)}
	d.cmd.Stderr = d
	d.cmd.Stdout = io.Discard
	if err := d.cmd.Start(); err != nil {
		n.t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	n.t.Cleanup(func() { d.stop(n.t) })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(d.String(), "msg=reconciled") {
		if time.Now().After(deadline) {
			n.t.Fatalf("overlayd run did not start:\n%s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return d
}

// stop sends SIGTERM and checks that the daemon exits 0 promptly.
func (d *daemon) stop(t testing.TB) {
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("overlayd run after SIGTERM: %v\n%s", err, d)
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("overlayd run ignored SIGTERM\n%s", d)
	}
}

// scrape fetches /metrics from addr inside the node's netns (a plain TCP
// connection opened on a thread in that netns).
func (n *simNode) scrape(addr string) string {
	n.t.Helper()
	ns, err := rtnl.OpenNamedNetNS("", n.name)
	if err != nil {
		n.t.Fatal(err)
	}
	defer ns.Close()
	var conn net.Conn
	if err := ns.Do(func() error {
		var err error
		conn, err = net.Dial("tcp", addr)
		return err
	}); err != nil {
		n.t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
	body, _ := io.ReadAll(bufio.NewReader(conn))
	return string(body)
}

// TestRunResolvesAcrossNodes: the lab's two-node setup with no entry
// pre-programmed; `overlayd run` on each node resolves the misses and a
// real ping from node 1's container reaches node 2's and back.
func TestRunResolvesAcrossNodes(t *testing.T) {
	store := "dir:" + t.TempDir()
	n1 := newSimNode(t, "r1", store)
	n2 := newSimNode(t, "r2", store)
	n1.ip("link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", n2.name)
	n1.ip("addr", "add", "192.0.2.2/24", "dev", "u0")
	n2.ip("addr", "add", "192.0.2.3/24", "dev", "u0")
	n1.ip("link", "set", "u0", "up")
	n2.ip("link", "set", "u0", "up")
	n1.ok("create", "--local", "192.0.2.2")
	n2.ok("create", "--local", "192.0.2.3")
	n1.ok("attach", "pink", "--ip", "198.51.100.2/24")
	n2.ok("attach", "sky", "--ip", "198.51.100.3/24")

	d1 := n1.startDaemon("--metrics", "127.0.0.1:0", "--log-level", "debug")
	d2 := n2.startDaemon("--log-level", "debug")

	var out []byte
	var err error
	for range 5 { // the first ARP of each side is consumed by its miss
		out, err = exec.Command("nsenter", "--net="+filepath.Join(n1.dir, "pink"), "ping", "-c1", "-W1", "198.51.100.3").CombinedOutput()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("ping pink -> sky through the daemons: %v\n%s\nnode 1 daemon:\n%s\nnode 2 daemon:\n%s", err, out, d1, d2)
	}
	// Both daemons resolved: node 1 the L3 miss for sky, node 2 the one for
	// pink (the reply's ARP), each with neighbour + FDB in one batch. The
	// requester is answered as soon as the entry is in, so the ping may
	// return before the daemon has written its line: wait for it.
	for i, d := range []*daemon{d1, d2} {
		if !waitFor(2*time.Second, func() bool { return strings.Contains(d.String(), "msg=resolved") }) {
			t.Errorf("node %d daemon logged no resolution:\n%s", i+1, d)
		}
	}
	if !strings.Contains(d1.String(), "msg=miss kind=l3miss") {
		t.Errorf("debug log has no miss line:\n%s", d1)
	}
	neigh := n1.mustIn("overns", "ip", "neigh", "show", "dev", "vxlan1")
	if !strings.Contains(neigh, "198.51.100.3 lladdr 02:42:c6:33:64:03 PERMANENT proto 214") {
		t.Errorf("node 1 neighbour entries:\n%s", neigh)
	}
	fdb := n1.mustIn("overns", "bridge", "fdb", "show", "dev", "vxlan1")
	if !regexp.MustCompile(`02:42:c6:33:64:03 dst 192\.0\.2\.3 .*self extern_learn permanent`).MatchString(fdb) {
		t.Errorf("node 1 FDB entries:\n%s", fdb)
	}

	m := regexp.MustCompile(`url=http://(\S+)/metrics`).FindStringSubmatch(d1.String())
	if m == nil {
		t.Fatalf("no metrics URL logged:\n%s", d1)
	}
	metrics := n1.scrape(m[1])
	for _, want := range []string{
		"HTTP/1.0 200 OK", "text/plain; version=0.0.4",
		`overlayd_resolutions_total{kind="l3miss"} 1`,
		`overlayd_programmed_entries{table="neigh"} 1`,
		`overlayd_programmed_entries{table="fdb"} 1`,
		"overlayd_registry_lookup_duration_seconds_count",
		"overlayd_program_batch_duration_seconds_count",
		"overlayd_monitor_messages_total",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}

	// SIGTERM: clean exit; the entries stay (adopted at the next start).
	d1.stop(t)
	if !strings.Contains(d1.String(), "overlayd stopped") {
		t.Errorf("no shutdown line:\n%s", d1)
	}
	if neigh := n1.mustIn("overns", "ip", "neigh", "show", "dev", "vxlan1"); !strings.Contains(neigh, "198.51.100.3") {
		t.Errorf("stopping the daemon flushed its entries:\n%s", neigh)
	}
	d1b := n1.startDaemon()
	if !strings.Contains(d1b.String(), "adopted=2") {
		t.Errorf("restarted daemon did not adopt its 2 entries:\n%s", d1b)
	}
}

// TestRunDefaultsAreTheLibrarys checks that `overlayd run` with no flags
// configures its resolver, monitor and logger exactly as the library's
// defaults say (the configuration the benchmarks measure; see
// bench.TestBenchmarkConfigIsTheDaemons).
func TestRunDefaultsAreTheLibrarys(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	var o runOptions
	o.bind(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := o.check(); err != nil {
		t.Fatalf("the default flags do not pass their own check: %v", err)
	}
	if got, want := o.tuning(), resolver.DefaultTuning(); !reflect.DeepEqual(got, want) {
		t.Errorf("overlayd run's resolver tuning differs from resolver.DefaultTuning():\n got %+v\nwant %+v", got, want)
	}
	if got, want := o.rcvbuf, resolver.DefaultMonitorConfig(nil).ReceiveBuffer; got != want {
		t.Errorf("overlayd run's --rcvbuf defaults to %d, want resolver.DefaultMonitorConfig's %d", got, want)
	}
	var g globalFlags
	gfs := flag.NewFlagSet("overlayd", flag.ContinueOnError)
	g.bind(gfs)
	log, err := g.logger(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if !log.Enabled(ctx, resolver.DefaultLogLevel) || log.Enabled(ctx, resolver.DefaultLogLevel-1) {
		t.Errorf("overlayd's default --log-level %q is not resolver.DefaultLogLevel %v", g.logLevel, resolver.DefaultLogLevel)
	}
	if _, ok := log.Handler().(*slog.TextHandler); !ok {
		t.Errorf("overlayd's default log handler is %T, want *slog.TextHandler (the benchmarks' daemon logger)", log.Handler())
	}
}
