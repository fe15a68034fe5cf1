package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/wireguard"
	"github.com/overlaynet/overlaynet/overlay/wireguard/userspace"
)

// wgDeviceEnv, set to 1, makes the test binary the userspace WireGuard
// device process (`overlayd wireguard`), so that the package's encrypted
// overlays run without the overlayd binary.
const wgDeviceEnv = "OVERLAY_TEST_WG_DEVICE"

// wgTestCommand is the device process's command line for the package's
// nodes: this test binary in its device mode.
func wgTestCommand() []string {
	return []string{"/usr/bin/env", wgDeviceEnv + "=1", os.Args[0]}
}

// wgDeviceChild runs the device as `overlayd wireguard` does, from the
// flags after the binary's name.
func wgDeviceChild() int {
	fs := flag.NewFlagSet("wireguard", flag.ContinueOnError)
	var o userspace.Options
	mtu := fs.Uint("mtu", 1420, "")
	fs.StringVar(&o.Name, "name", "", "")
	fs.StringVar(&o.Dir, "dir", "", "")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	o.MTU = uint32(*mtu)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := userspace.Run(ctx, o, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// encryptedTestConfig is testConfig with encryption (tunnel 10.99.0.0/16).
func encryptedTestConfig(local string) Config {
	c := testConfig(local)
	c.MTU = DefaultEncryptedMTU
	c.Encrypt = &EncryptConfig{Tunnel: netip.MustParsePrefix("10.99.0.0/16"), Port: DefaultWireGuardPort}
	return c
}

// killedCreate runs a create of cfg in a child process killed right after
// step.
func (tn *testNode) killedCreate(cfg Config, step string) {
	tn.t.Helper()
	job, _ := json.Marshal(crashJob{Host: tn.hostName, NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Store: tn.store.Root(),
		KillAfter: step, Create: &cfg})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+string(job))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		tn.t.Fatalf("the create child was not killed after step %s: %v\n%s", step, err, out)
	}
}

// encryptedLeftovers lists what of an encrypted overlay is on the node or
// in its store: the WireGuard directory, a device process, member records,
// named namespaces, links of the host namespace other than the underlay.
func (tn *testNode) encryptedLeftovers() []string {
	var out []string
	if _, err := os.Stat(filepath.Join(tn.stateDir, wireguardDir)); err == nil {
		out = append(out, "state dir wireguard/")
	}
	if pid, running, _ := wireguard.ProcessRunning(filepath.Join(tn.stateDir, wireguardDir)); running {
		out = append(out, fmt.Sprintf("device process %d", pid))
	}
	mm, _, err := tn.store.Members(context.Background())
	if err != nil {
		tn.t.Fatal(err)
	}
	for _, m := range mm {
		out = append(out, "member "+m.VTEP.String())
	}
	if names := tn.netnsNames(); len(names) > 0 {
		out = append(out, "netns "+strings.Join(names, ","))
	}
	for _, line := range strings.Split(strings.TrimSpace(nstest.Run(tn.t, tn.hostName, "ip", "-o", "link", "show")), "\n") {
		f := strings.Fields(line)
		if l := strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"); len(f) > 1 && l != "lo" && l != "ul0" && l != "ulpeer" {
			out = append(out, "host link "+l)
		}
	}
	return out
}

// TestCreateEncryptedKilledAtEveryStep: a create --encrypt killed (SIGKILL,
// no rollback) right after each of its steps is finished by the next
// create (the same configuration: the tunnel address and the device
// process are taken over, not made twice) or undone by reset: nothing of
// it is left — no WireGuard directory or key, no device process, no member
// record, no namespace or device.
func TestCreateEncryptedKilledAtEveryStep(t *testing.T) {
	base := newTestNode(t, "ek", testUnderlay, nil)
	if names := base.netnsNames(); len(names) != 0 {
		t.Fatalf("netns dir not empty: %v", names)
	}
	cfg := encryptedTestConfig("192.0.2.2")
	for i, step := range []string{stepOverlayNetNS, stepBridge, stepGateway, stepTunnelIdentity, stepTunnelClaim, stepTunnelDevice, stepVxlan, stepUp, stepOverlayState} {
		next := []string{"create", "reset"}[i%2]
		t.Run(step+"/"+next, func(t *testing.T) {
			tn := newTestNode(t, "ek", testUnderlay, nil)
			tn.node = NewNode(NodeOptions{NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Registry: tn.store, Logger: nodeTestLogger(t), WireGuardCommand: wgTestCommand()})
			tn.killedCreate(cfg, step)
			if next == "create" {
				ov := tn.mustCreate(cfg)
				st, err := tn.status()
				if err != nil || st.Tunnel == nil || !st.Tunnel.Running || len(st.Problems) > 0 {
					t.Fatalf("status after the finishing create: %+v, %v", st, err)
				}
				if mm, _, _ := tn.store.Members(context.Background()); len(mm) != 1 || mm[0].VTEP != ov.VTEP {
					t.Fatalf("members after the finishing create: %+v (VTEP %s)", mm, ov.VTEP)
				}
			}
			if err := tn.reset(); err != nil {
				t.Fatal(err)
			}
			if left := tn.encryptedLeftovers(); len(left) > 0 {
				t.Fatalf("left after a create killed after %s, then %s and reset: %v", step, next, left)
			}
		})
	}
}

// TestCreateEncryptedRefusals: settings that cannot work are refused
// before anything is made, naming the problem.
func TestCreateEncryptedRefusals(t *testing.T) {
	tn := newTestNode(t, "er", testUnderlay, nil)
	tn.node = NewNode(NodeOptions{NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Registry: tn.store, Logger: nodeTestLogger(t), WireGuardCommand: wgTestCommand()})
	big := encryptedTestConfig("192.0.2.2")
	big.MTU = 1450
	overlap := encryptedTestConfig("192.0.2.2")
	overlap.Encrypt.Tunnel = netip.MustParsePrefix("192.0.2.128/25")
	noFilter := encryptedTestConfig("192.0.2.2")
	noFilter.NoVTEPFilter = true
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{big, "MTU 1450 is above what underlay ul0 (MTU 1500, chosen by --local) allows with encryption: at most 1390"},
		{overlap, "overlaps the tunnel subnet 192.0.2.128/25"},
		{noFilter, "encrypt needs the VTEP allowlist"},
	} {
		_, err := tn.create(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create: %v; want an error with %q", err, c.want)
		}
		if left := tn.encryptedLeftovers(); len(left) > 0 {
			t.Errorf("a refused create left %v", left)
		}
	}
}

// TestRekeyKilledHalfWay: a rekey that died with its next key published
// but the device not switched is undone by EnsureTunnel (what the daemon
// runs at start); one that died after the switch is finished: the member
// record, the key file and the state then hold the new key. And a second
// node whose WireGuard device would take over the first's UAPI socket is
// refused.
func TestRekeyKilledHalfWay(t *testing.T) {
	ctx := context.Background()
	tn := newTestNode(t, "rk", testUnderlay, nil)
	tn.node = NewNode(NodeOptions{NetNSDir: tn.netnsDir, StateDir: tn.stateDir, Registry: tn.store, Logger: nodeTestLogger(t), WireGuardCommand: wgTestCommand()})
	ov := tn.mustCreate(encryptedTestConfig("192.0.2.2"))
	t0 := ov.Tunnel
	member := func() registry.Member {
		mm, _, err := tn.store.Members(ctx)
		if err != nil || len(mm) != 1 {
			t.Fatalf("members %+v, %v", mm, err)
		}
		return mm[0]
	}
	// Died before the switch.
	nk, _ := wireguard.GenerateKey()
	if err := wireguard.WriteKeyFile(filepath.Join(tn.stateDir, "wireguard", nextKeyFile), nk); err != nil {
		t.Fatal(err)
	}
	if err := tn.store.ClaimMember(ctx, t0.member(nk.PublicKey())); err != nil {
		t.Fatal(err)
	}
	if st, _ := tn.status(); st == nil || st.Tunnel == nil || !st.Tunnel.RekeyHalfMade {
		t.Fatalf("status does not show the half-made rekey: %+v", st)
	}
	if err := tn.do(func() error { _, err := tn.node.EnsureTunnel(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	if m := member(); m.NextKey != "" || m.PublicKey != t0.PublicKey.String() || fileExists(filepath.Join(tn.stateDir, "wireguard", nextKeyFile)) {
		t.Fatalf("a rekey killed before the switch was not undone: %+v", m)
	}
	// Died after the switch.
	nk, _ = wireguard.GenerateKey()
	if err := wireguard.WriteKeyFile(filepath.Join(tn.stateDir, "wireguard", nextKeyFile), nk); err != nil {
		t.Fatal(err)
	}
	if err := (&wireguard.UAPI{}).Configure(t0.Device, wireguard.Config{PrivateKey: &nk}); err != nil {
		t.Fatal(err)
	}
	if err := tn.do(func() error { _, err := tn.node.EnsureTunnel(ctx); return err }); err != nil {
		t.Fatal(err)
	}
	k, err := wireguard.ReadKeyFile(filepath.Join(tn.stateDir, "wireguard", privateKeyFile))
	st, _ := tn.status()
	if m := member(); err != nil || !k.Equal(nk) || m.PublicKey != nk.PublicKey().String() || m.NextKey != "" || st == nil || st.Tunnel.PublicKey != nk.PublicKey() {
		t.Fatalf("a rekey killed after the switch was not finished: member %+v, key file %v", m, err)
	}

	other := newTestNode(t, "rk", testUnderlay, tn.store)
	other.node = NewNode(NodeOptions{NetNSDir: other.netnsDir, StateDir: other.stateDir, Registry: other.store, Logger: nodeTestLogger(t), WireGuardCommand: wgTestCommand()})
	cfg := encryptedTestConfig("192.0.2.2")
	cfg.Encrypt.Device = t0.Device
	if _, err := other.create(cfg); err == nil || !strings.Contains(err.Error(), "another WireGuard device of this machine is named "+t0.Device) {
		t.Errorf("a device name whose UAPI socket answers: %v", err)
	}
}
