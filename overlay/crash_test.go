package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// crashChildEnv, set, makes the test binary a child that attaches and
// kills itself right after a step (crashChild).
const crashChildEnv = "OVERLAY_TEST_CRASH_CHILD"

// crashJob is what the child is to do: an attach, or with Create a
// create of that configuration.
type crashJob struct {
	Host, NetNSDir, StateDir, Store, Name, IP, KillAfter string
	Create                                               *Config
}

func TestMain(m *testing.M) {
	if os.Getenv(wgDeviceEnv) == "1" { // first: a crash child's device process inherits its job
		os.Exit(wgDeviceChild())
	}
	if job := os.Getenv(crashChildEnv); job != "" {
		os.Exit(crashChild(job))
	}
	os.Exit(m.Run())
}

// crashChild runs the attach of job in its node's host namespace, killing
// the process (SIGKILL: no defer runs, no rollback) right after step
// KillAfter is made. It returns only if the attach ended first.
func crashChild(job string) int {
	var j crashJob
	if err := json.Unmarshal([]byte(job), &j); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	store, err := dirstore.New(j.Store)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n := NewNode(NodeOptions{NetNSDir: j.NetNSDir, StateDir: j.StateDir, Registry: store, WireGuardCommand: wgTestCommand()})
	n.stepHook = func(step string) error {
		if step == j.KillAfter {
			unix.Kill(os.Getpid(), unix.SIGKILL)
			select {}
		}
		return nil
	}
	host, err := rtnl.OpenNamedNetNS("", j.Host)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	err = host.Do(func() error {
		if j.Create != nil {
			_, err := n.Create(context.Background(), *j.Create)
			return err
		}
		_, err := n.Attach(context.Background(), AttachRequest{Name: j.Name, IP: netip.MustParsePrefix(j.IP)})
		return err
	})
	fmt.Fprintf(os.Stderr, "operation ended before step %s: %v\n", j.KillAfter, err)
	return 1
}

// killedAttach runs an attach of name in a child process killed right
// after step.
func (tn *testNode) killedAttach(name, step string) {
	tn.t.Helper()
	job, _ := json.Marshal(crashJob{Host: tn.hostName, NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Store: tn.store.Root(),
		Name: name, IP: "198.51.100.2/24", KillAfter: step})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(job))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		tn.t.Fatalf("the attach child was not killed after step %s: %v\n%s", step, err, out)
	}
}

// TestAttachKilledAtEveryStep: an attach killed (SIGKILL, in a child
// process: no rollback runs) right after each of its steps leaves a record
// of intent, shown by Status; then whoever comes next — a sweep, the next
// attach of the name, its detach — takes everything back: the node holds
// exactly what it held before (namespaces, links, rules, state, records,
// allocations), and in a namespace that existed before (as a runtime's),
// the namespace stays, without the interface.
func TestAttachKilledAtEveryStep(t *testing.T) {
	tn := newTestNode(t, "kx", testUnderlay, nil)
	ctx := context.Background()
	tn.mustCreate(testConfig("192.0.2.2"))
	pre, err := rtnl.CreateNetNS(tn.netnsDir, "prens")
	if err != nil {
		t.Fatal(err)
	}
	pre.Close()
	base := tn.view()
	all := []string{stepAllocate, stepNetNS, stepVeth, stepAntispoof, stepLoopback, stepAddress, stepLinkUp,
		stepBridgePort, stepRoute, stepState, stepRegister}
	for _, existing := range []bool{false, true} {
		name, steps := "newns", all
		if existing {
			name, steps = "prens", slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s == stepNetNS })
		}
		for i, step := range steps {
			next := []string{"sweep", "attach", "detach"}[i%3]
			t.Run(name+"/"+step+"/"+next, func(t *testing.T) {
				tn.t = t
				tn.killedAttach(name, step)
				st, err := tn.status()
				if err != nil || len(st.HalfMade) != 1 || st.HalfMade[0].Name != name || st.HalfMade[0].InProgress ||
					!slices.Equal(st.HalfMade[0].Made, steps[:slices.Index(steps, step)+1]) {
					t.Fatalf("status after the kill: half-made %+v, %v", st.HalfMade, err)
				}
				switch next {
				case "sweep":
					leaks, err := tn.sweep(ctx)
					if err != nil || len(leaks) == 0 {
						t.Fatalf("sweep: removed %v, %v", leaks, err)
					}
				case "attach":
					tn.mustAttach(AttachRequest{Name: name, IP: netip.MustParsePrefix("198.51.100.2/24")})
					if err := tn.detach(name); err != nil {
						t.Fatal(err)
					}
				case "detach":
					if err := tn.detach(name); err != nil {
						t.Fatalf("detach of a half-made attach: %v", err)
					}
				}
				tn.sameView(t, base)
			})
		}
	}
}

func (tn *testNode) sweep(ctx context.Context) ([]Leak, error) {
	var leaks []Leak
	err := tn.do(func() (err error) { leaks, err = tn.node.Sweep(ctx, SweepOptions{Records: true}); return err })
	return leaks, err
}

// TestSweepOwnedByNothing: what no endpoint and no operation owns is
// removed by a sweep — a host veth, its anti-spoofing rules, an
// allocation, an empty block, a record at this node's VTEP (IP → MAC →
// VTEP, and MAC → VTEP alone), temporary files of the state directory —
// and nothing else: the endpoints, another node's records and a namespace
// no attach recorded making stay.
func TestSweepOwnedByNothing(t *testing.T) {
	tn := newTestNode(t, "so", testUnderlay, nil)
	ctx := context.Background()
	tn.mustCreate(testConfig("192.0.2.2"))
	ep := tn.mustAttach(AttachRequest{Name: "pink"})
	other := recordOf("198.51.100.60", "02:aa:00:00:00:60", "192.0.2.3")
	orphan := recordOf("198.51.100.61", "02:aa:00:00:00:61", "192.0.2.2")
	fdbOnly := recordOf("198.51.100.62", "02:aa:00:00:00:62", "192.0.2.2")
	for _, r := range []registry.Record{other, orphan, fdbOnly} {
		if err := tn.store.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	fdbOnly.VTEP = netip.Addr{}
	if err := tn.store.Unregister(ctx, fdbOnly); err != nil { // the IP record alone
		t.Fatal(err)
	}
	// A veth ve-* of nobody, with anti-spoofing rules; an allocation of
	// nobody; a temporary file; a namespace nobody recorded making.
	oc, err := tn.node.dial("overns")
	if err != nil {
		t.Fatal(err)
	}
	defer oc.Close()
	if err := oc.LinkAdd(rtnl.NewVethPair("ve-gone", rtnl.LinkMessage{Name: "gone-peer"})); err != nil {
		t.Fatal(err)
	}
	if err := tn.do(func() error {
		return tn.node.installAntispoof("overns", Endpoint{HostIf: "ve-gone", MAC: ep.MAC, IP: ep.IP})
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tn.stateDir, "ipam", "198.51.100.99"), []byte("gone\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tn.stateDir, "endpoints", ".gone.json.tmp123"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ns, err := rtnl.CreateNetNS(tn.netnsDir, "foreign"); err != nil {
		t.Fatal(err)
	} else {
		ns.Close()
	}
	leaks, err := tn.sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range leaks {
		got = append(got, l.String())
	}
	slices.Sort(got)
	want := []string{"allocation 198.51.100.99=gone", "antispoof ve-gone",
		"record 198.51.100.61 02:aa:00:00:00:61 192.0.2.2", "record 02:aa:00:00:00:62 192.0.2.2",
		"temp " + filepath.Join(tn.stateDir, "endpoints", ".gone.json.tmp123"), "veth ve-gone"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("sweep removed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if mac, err := tn.store.LookupMAC(ctx, other.IP); err != nil || mac != other.MAC {
		t.Errorf("another node's record: %v %v", mac, err)
	}
	if mac, err := tn.store.LookupMAC(ctx, ep.IP.Addr()); err != nil || mac != ep.MAC {
		t.Errorf("the endpoint's record: %v %v", mac, err)
	}
	if got := tn.netnsNames(); !slices.Equal(got, []string{"foreign", "overns", "pink"}) {
		t.Errorf("namespaces after the sweep: %v", got)
	}
	st, err := tn.status()
	if err != nil || len(st.Endpoints) != 1 || len(st.Endpoints[0].Problems) > 0 || len(st.Problems) > 0 {
		t.Errorf("status after the sweep: %+v %v", st, err)
	}
	// A second sweep finds nothing.
	if leaks, err := tn.sweep(ctx); err != nil || len(leaks) > 0 {
		t.Errorf("second sweep: %v %v", leaks, err)
	}
}
