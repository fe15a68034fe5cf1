package wireguard

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

func mustHexKey(t testing.TB, s string) Key {
	k, err := parseHexKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestKeys: a private key's public key is Curve25519's (RFC 7748, 6.1);
// generated keys are clamped and differ; a private key never prints; key
// files are 0600, and one others may read is refused.
func TestKeys(t *testing.T) {
	alice := mustHexKey(t, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	priv, _ := keyFromBytes(alice[:])
	if got, want := priv.PublicKey(), mustHexKey(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"); got != want {
		t.Errorf("public key %x, want %x", got, want)
	}
	a, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := GenerateKey()
	if a.Equal(b) || a.b[0]&7 != 0 || a.b[31]&0xc0 != 0x40 {
		t.Errorf("generated keys: equal %v, clamped first %08b last %08b", a.Equal(b), a.b[0], a.b[31])
	}
	printed := fmt.Sprintf("%v %+v %#v %s %q", a, a, a, a, a) + fmt.Sprint(Device{PrivateKey: a})
	for _, leak := range []string{hex.EncodeToString(a.b[:]), hex.EncodeToString(a.b[:4]), Key(a.b).String()[:12]} {
		if strings.Contains(printed, leak) {
			t.Fatalf("a private key printed itself: %s", printed)
		}
	}
	path := filepath.Join(t.TempDir(), "k", "private.key")
	if err := WriteKeyFile(path, a); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	back, err := ReadKeyFile(path)
	if err != nil || !back.Equal(a) {
		t.Fatalf("read back: %v", err)
	}
	os.Chmod(path, 0o644)
	if _, err := ReadKeyFile(path); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Errorf("a key file of mode 0644 was read: %v", err)
	}
	if k, err := ParseKey(Key(alice).String()); err != nil || k != alice || registry.ValidateKey(k.String()) != nil {
		t.Errorf("base64 round trip: %v", err)
	}
}

var (
	keyA = Key{1}
	keyB = Key{2}
	keyC = Key{3}
)

// TestUAPISet: a Config as the UAPI's set=1 request.
func TestUAPISet(t *testing.T) {
	nine := Key{9}
	priv, _ := keyFromBytes(nine[:])
	c := Config{PrivateKey: &priv, ListenPort: 51820, Peers: []PeerConfig{
		{PublicKey: keyA, Endpoint: netip.MustParseAddrPort("192.0.2.3:51820"), ReplaceAllowedIPs: true,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.2.3/32")}, Keepalive: 25 * time.Second},
		{PublicKey: keyB, UpdateOnly: true, Endpoint: netip.MustParseAddrPort("[2001:db8::3]:51820")},
		{PublicKey: keyC, Remove: true},
	}}
	want := "set=1\n" +
		"private_key=0900000000000000000000000000000000000000000000000000000000000000\n" +
		"listen_port=51820\n" +
		"public_key=0100000000000000000000000000000000000000000000000000000000000000\n" +
		"endpoint=192.0.2.3:51820\npersistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=10.99.2.3/32\n" +
		"public_key=0200000000000000000000000000000000000000000000000000000000000000\n" +
		"update_only=true\nendpoint=[2001:db8::3]:51820\n" +
		"public_key=0300000000000000000000000000000000000000000000000000000000000000\nremove=true\n\n"
	if got := encodeUAPISet(c); got != want {
		t.Errorf("set request:\n%s\nwant:\n%s", got, want)
	}
}

// TestUAPIGet: a get=1 reply of wireguard-go, peers with their handshakes,
// bytes and keepalive, unknown keys skipped; an errno fails it.
func TestUAPIGet(t *testing.T) {
	reply := "private_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\nlisten_port=51820\nfwmark=0\n" +
		"public_key=0100000000000000000000000000000000000000000000000000000000000000\n" +
		"preshared_key=0000000000000000000000000000000000000000000000000000000000000000\nprotocol_version=1\n" +
		"endpoint=192.0.2.3:51820\nlast_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\n" +
		"tx_bytes=100\nrx_bytes=200\npersistent_keepalive_interval=25\nallowed_ip=10.99.2.3/32\nallowed_ip=10.99.9.0/24\n" +
		"public_key=0200000000000000000000000000000000000000000000000000000000000000\n" +
		"last_handshake_time_sec=0\nlast_handshake_time_nsec=0\nsomething_new=1\nerrno=0\n\n"
	d, err := parseUAPIGet(bufio.NewReader(strings.NewReader(reply)))
	if err != nil {
		t.Fatal(err)
	}
	if d.ListenPort != 51820 || d.PublicKey != mustHexKey(t, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a") || len(d.Peers) != 2 {
		t.Fatalf("device %+v", d)
	}
	p := d.Peers[0]
	if p.PublicKey != keyA || p.Endpoint.String() != "192.0.2.3:51820" || !p.LastHandshake.Equal(time.Unix(1700000000, 5)) ||
		p.TxBytes != 100 || p.RxBytes != 200 || p.Keepalive != 25*time.Second || len(p.AllowedIPs) != 2 {
		t.Errorf("peer %+v", p)
	}
	if !d.Peers[1].LastHandshake.IsZero() {
		t.Errorf("a peer with no handshake has %v", d.Peers[1].LastHandshake)
	}
	if _, err := parseUAPIGet(bufio.NewReader(strings.NewReader("errno=2\n\n"))); err == nil {
		t.Error("an errno was taken for a device")
	}
	if err := readUAPIErrno(bufio.NewReader(strings.NewReader("errno=22\n\n"))); err == nil {
		t.Error("a set's errno 22 was taken for success")
	}
}

// FuzzUAPIGet: no reply makes the parser panic.
func FuzzUAPIGet(f *testing.F) {
	f.Add("private_key=77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\nlisten_port=1\npublic_key=" + strings.Repeat("01", 32) + "\nallowed_ip=10.0.0.1/32\nerrno=0\n\n")
	f.Add("listen_port=99999\n\n")
	f.Add("public_key=zz\n")
	f.Fuzz(func(t *testing.T, s string) {
		parseUAPIGet(bufio.NewReader(strings.NewReader(s)))
	})
}

// genlFamily is the family id the fake kernel gives WireGuard.
const genlFamily = 0x1f

// fakeKernel answers the controller's family request and records the
// WireGuard requests, answering a get with dump.
func fakeKernel(t *testing.T, noFamily bool, dump [][]byte) (*Kernel, *rtnltest.Transport) {
	t.Helper()
	tr := rtnltest.New(func(r rtnltest.Request) ([]rtnltest.Message, error) {
		switch r.Type() {
		case genlIDCtrl:
			if noFamily {
				return nil, syscall.ENOENT
			}
			ae := rtnl.NewAttributeEncoder(genlHeader(nil, 1, 2))
			ae.String(ctrlAttrFamilyName, FamilyName)
			ae.Uint16(ctrlAttrFamilyID, genlFamily)
			return []rtnltest.Message{{Type: genlIDCtrl, Data: ae.Bytes()}}, nil
		case genlFamily:
			if r.IsDump() {
				var out []rtnltest.Message
				for _, d := range dump {
					out = append(out, rtnltest.Message{Type: genlFamily, Data: d})
				}
				return out, nil
			}
			return nil, nil
		}
		return nil, syscall.EOPNOTSUPP
	})
	k, err := NewKernel(rtnl.NewConn(tr))
	if err != nil {
		return nil, tr
	}
	return k, tr
}

// TestKernelNoWireGuard: a kernel without the family is ErrNoKernelWireGuard.
func TestKernelNoWireGuard(t *testing.T) {
	tr := rtnltest.New(func(rtnltest.Request) ([]rtnltest.Message, error) { return nil, syscall.ENOENT })
	if _, err := NewKernel(rtnl.NewConn(tr)); !errors.Is(err, ErrNoKernelWireGuard) {
		t.Fatalf("NewKernel on a kernel without WireGuard: %v", err)
	}
}

// TestKernelConfigure: WG_CMD_SET_DEVICE as the kernel wants it — the
// family's id as the message type, REQUEST|ACK, genlmsghdr {cmd 1,
// version 1}, the device by name, key, port, peers as a nested array
// (NLA_F_NESTED) with their flags, endpoint (sockaddr_in, port in network
// order) and allowed IPs; split into messages of 64 peers.
func TestKernelConfigure(t *testing.T) {
	k, tr := fakeKernel(t, false, nil)
	if k == nil {
		t.Fatal("no family resolved")
	}
	nine := Key{9}
	priv, _ := keyFromBytes(nine[:])
	peers := make([]PeerConfig, 70)
	for i := range peers {
		peers[i] = PeerConfig{PublicKey: Key{byte(i)}, Endpoint: netip.MustParseAddrPort("192.0.2.3:51820"), ReplaceAllowedIPs: true,
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.2.3/32")}, Keepalive: 25 * time.Second}
	}
	peers[69] = PeerConfig{PublicKey: keyC, Remove: true}
	if err := k.Configure("owg1", Config{PrivateKey: &priv, ListenPort: 51820, ReplacePeers: true, Peers: peers}); err != nil {
		t.Fatal(err)
	}
	var sets []rtnltest.Request
	for _, r := range tr.Requests() {
		if r.Type() == genlFamily {
			sets = append(sets, r)
		}
	}
	if len(sets) != 2 {
		t.Fatalf("%d WG_CMD_SET_DEVICE messages, want 2 (64 peers each at most)", len(sets))
	}
	for i, r := range sets {
		if r.Flags() != rtnl.FlagRequest|rtnl.FlagAck || r.Body[0] != wgCmdSetDevice || r.Body[1] != wgGenlVersion {
			t.Fatalf("message %d: flags %#x genlmsghdr % x", i, r.Flags(), r.Body[:4])
		}
		d := Device{}
		if err := decodeDevice(&d, r.Body[genlHeaderLen:]); err != nil {
			t.Fatal(err)
		}
		if d.Name != "owg1" || (i == 0) != (d.ListenPort == 51820) || (i == 0) != d.PrivateKey.Equal(priv) {
			t.Errorf("message %d: device %q port %d key %v", i, d.Name, d.ListenPort, d.PrivateKey.Equal(priv))
		}
		if want := []int{64, 6}[i]; len(d.Peers) != want {
			t.Errorf("message %d: %d peers, want %d", i, len(d.Peers), want)
		}
	}
	// The nested flag, the peer flags, the endpoint's bytes, in the first peer.
	ad := rtnl.NewAttributeDecoder(sets[0].Body[genlHeaderLen:])
	for ad.Next() {
		if ad.Type() != wgDevPeers {
			continue
		}
		if !ad.Nested() {
			t.Error("WGDEVICE_A_PEERS without NLA_F_NESTED")
		}
		ps := ad.Nest()
		ps.Next()
		if !ps.Nested() {
			t.Error("a peer without NLA_F_NESTED")
		}
		p := ps.Nest()
		for p.Next() {
			switch p.Type() {
			case wgPeerFlags:
				if f := p.Uint32(); f != wgPeerFReplaceIP {
					t.Errorf("peer flags %#x", f)
				}
			case wgPeerEndpoint:
				if b := p.Bytes(); binary.NativeEndian.Uint16(b) != afInet || b[2] != 0xca || b[3] != 0x6c || netip.AddrFrom4([4]byte(b[4:8])).String() != "192.0.2.3" {
					t.Errorf("endpoint % x", b)
				}
			case wgPeerKeepalive:
				if v := p.Uint16(); v != 25 {
					t.Errorf("keepalive %d", v)
				}
			}
		}
	}
}

// TestKernelDevice: a device dumped over two messages, its second peer's
// allowed IPs continued in the second message, comes back merged.
func TestKernelDevice(t *testing.T) {
	msg := func(peers ...Peer) []byte {
		ae := rtnl.NewAttributeEncoder(genlHeader(nil, wgCmdGetDevice, wgGenlVersion))
		ae.String(wgDevIfname, "owg1")
		ae.Uint16(wgDevListenPort, 51820)
		ae.Raw(wgDevPublicKey, keyA[:])
		ps := ae.Begin(wgDevPeers)
		for i, p := range peers {
			m := ae.Begin(uint16(i))
			ae.Raw(wgPeerPublicKey, p.PublicKey[:])
			if p.Endpoint.IsValid() {
				ae.Raw(wgPeerEndpoint, sockaddr(p.Endpoint))
			}
			ts := make([]byte, 16)
			binary.NativeEndian.PutUint64(ts, uint64(p.LastHandshake.Unix()))
			ae.Raw(wgPeerHandshake, ts)
			ae.Uint64(wgPeerRxBytes, p.RxBytes)
			ips := ae.Begin(wgPeerAllowedIPs)
			for j, a := range p.AllowedIPs {
				e := ae.Begin(uint16(j))
				ae.Uint16(wgAIPFamily, afInet)
				ae.Addr(wgAIPAddr, a.Addr())
				ae.Uint8(wgAIPCidr, uint8(a.Bits()))
				ae.End(e)
			}
			ae.End(ips)
			ae.End(m)
		}
		ae.End(ps)
		return ae.Bytes()
	}
	hs := time.Unix(1700000000, 0)
	p1 := Peer{PublicKey: keyB, Endpoint: netip.MustParseAddrPort("[2001:db8::3]:51820"), LastHandshake: hs, RxBytes: 7,
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.2.3/32")}}
	p2a := Peer{PublicKey: keyC, LastHandshake: hs, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.2.4/32")}}
	p2b := Peer{PublicKey: keyC, LastHandshake: hs, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.99.7.0/24")}}
	k, _ := fakeKernel(t, false, [][]byte{msg(p1, p2a), msg(p2b)})
	d, err := k.Device("owg1")
	if err != nil {
		t.Fatal(err)
	}
	if d.PublicKey != keyA || d.ListenPort != 51820 || len(d.Peers) != 2 || len(d.Peers[1].AllowedIPs) != 2 ||
		d.Peers[0].Endpoint != p1.Endpoint || !d.Peers[0].LastHandshake.Equal(hs) || d.Peers[0].RxBytes != 7 {
		t.Errorf("device %+v", d)
	}
}

// FuzzGenlDevice: no WG_CMD_GET_DEVICE reply makes the decoder panic.
func FuzzGenlDevice(f *testing.F) {
	ae := rtnl.NewAttributeEncoder(nil)
	ae.String(wgDevIfname, "owg1")
	ps := ae.Begin(wgDevPeers)
	m := ae.Begin(0)
	ae.Raw(wgPeerPublicKey, keyA[:])
	ae.Raw(wgPeerEndpoint, sockaddr(netip.MustParseAddrPort("192.0.2.3:1")))
	ae.End(m)
	ae.End(ps)
	f.Add(ae.Bytes())
	f.Add([]byte{8, 0, 8, 0x80, 4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeDevice(&Device{}, b)
	})
}

// linkMaker is a fake LinkAdd answering err.
type linkMaker struct {
	err  error
	made []*rtnl.LinkMessage
}

func (l *linkMaker) LinkAdd(m *rtnl.LinkMessage) error {
	l.made = append(l.made, m)
	return l.err
}

// TestChoose: the kernel's WireGuard when the kernel makes a link of kind
// wireguard, userspace when it refuses the kind, an error for any other
// failure; a wanted provider alone is tried.
func TestChoose(t *testing.T) {
	for _, c := range []struct {
		name   string
		err    error
		want   Provider
		got    Provider
		failed bool
		tried  int
	}{
		{"kernel has it", nil, 0, ProviderKernel, false, 1},
		{"kernel lacks it", &rtnl.OpError{Op: "RTM_NEWLINK", Err: syscall.EOPNOTSUPP}, 0, ProviderUserspace, false, 1},
		{"name taken", &rtnl.OpError{Op: "RTM_NEWLINK", Err: syscall.EEXIST}, 0, 0, true, 1},
		{"kernel wanted, lacking", &rtnl.OpError{Op: "RTM_NEWLINK", Err: syscall.EOPNOTSUPP}, ProviderKernel, 0, true, 1},
		{"userspace wanted", nil, ProviderUserspace, ProviderUserspace, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			lm := &linkMaker{err: c.err}
			p, err := Choose(lm, "owg1", 1440, c.want)
			if p != c.got || (err != nil) != c.failed || len(lm.made) != c.tried {
				t.Fatalf("Choose: %v, %v, %d links asked; want %v, failed %v, %d", p, err, len(lm.made), c.got, c.failed, c.tried)
			}
			if c.tried > 0 && (lm.made[0].Kind() != KindWireGuard || lm.made[0].Name != "owg1" || lm.made[0].MTU != 1440) {
				t.Errorf("link asked: %+v", lm.made[0])
			}
		})
	}
}

// TestPlan: the peers' changes from members and the device.
func TestPlan(t *testing.T) {
	ep := netip.MustParseAddrPort("192.0.2.3:51820")
	ep2 := netip.MustParseAddrPort("192.0.2.30:51820")
	vt := netip.MustParseAddr("10.99.2.3")
	ip := []netip.Prefix{netip.MustParsePrefix("10.99.2.3/32")}
	held := Peer{PublicKey: keyA, Endpoint: ep, AllowedIPs: ip, Keepalive: Keepalive}
	for _, c := range []struct {
		name     string
		have     []Peer
		want     []Want
		complete bool
		applied  map[Key]netip.AddrPort
		changes  Changes
		peers    []PeerConfig
	}{
		{name: "new peer", want: []Want{{Key: keyA, Endpoint: ep, VTEP: vt}}, complete: true,
			changes: Changes{Added: 1}, peers: []PeerConfig{{PublicKey: keyA, Endpoint: ep, ReplaceAllowedIPs: true, AllowedIPs: ip, Keepalive: Keepalive}}},
		{name: "as it is", have: []Peer{held}, want: []Want{{Key: keyA, Endpoint: ep, VTEP: vt}}, complete: true},
		{name: "roamed, left alone", have: []Peer{{PublicKey: keyA, Endpoint: ep2, AllowedIPs: ip, Keepalive: Keepalive}},
			want: []Want{{Key: keyA, Endpoint: ep, VTEP: vt}}, complete: true},
		{name: "endpoint changed in the store", have: []Peer{held}, want: []Want{{Key: keyA, Endpoint: ep2, VTEP: vt}},
			applied: map[Key]netip.AddrPort{keyA: ep}, complete: true,
			changes: Changes{Updated: 1}, peers: []PeerConfig{{PublicKey: keyA, UpdateOnly: true, Endpoint: ep2}}},
		{name: "gone", have: []Peer{held}, complete: true, changes: Changes{Removed: 1}, peers: []PeerConfig{{PublicKey: keyA, Remove: true}}},
		{name: "gone, incomplete view", have: []Peer{held}, complete: false},
		{name: "next key", have: []Peer{held}, want: []Want{{Key: keyA, Next: keyB, Endpoint: ep, VTEP: vt}}, complete: true,
			changes: Changes{Added: 1}, peers: []PeerConfig{{PublicKey: keyB, Endpoint: ep, ReplaceAllowedIPs: true}}},
		{name: "switched to the next key", have: []Peer{held, {PublicKey: keyB, Endpoint: ep}}, want: []Want{{Key: keyB, Endpoint: ep, VTEP: vt}},
			complete: true, changes: Changes{Updated: 1, Removed: 1},
			peers: []PeerConfig{{PublicKey: keyB, UpdateOnly: true, ReplaceAllowedIPs: true, AllowedIPs: ip, Keepalive: Keepalive}, {PublicKey: keyA, Remove: true}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			applied := c.applied
			if applied == nil {
				applied = map[Key]netip.AddrPort{}
			}
			cfg, ch := Plan(&Device{Peers: c.have}, c.want, c.complete, applied)
			if ch != c.changes || fmt.Sprint(cfg.Peers) != fmt.Sprint(c.peers) {
				t.Errorf("Plan: %+v %+v\nwant %+v %+v", ch, cfg.Peers, c.changes, c.peers)
			}
		})
	}
}

// TestSwitched: a member's next key counts as its key once it made a
// handshake, not before.
func TestSwitched(t *testing.T) {
	vt := netip.MustParseAddr("10.99.2.3")
	want := []Want{{Key: keyA, Next: keyB, VTEP: vt}, {Key: keyC, VTEP: netip.MustParseAddr("10.99.2.4")}}
	before := &Device{Peers: []Peer{{PublicKey: keyA}, {PublicKey: keyB}, {PublicKey: keyC}}}
	if got := Switched(before, want); got[0].Key != keyA || got[0].Next != keyB {
		t.Errorf("switched before a handshake with the next key: %+v", got[0])
	}
	after := &Device{Peers: []Peer{{PublicKey: keyA}, {PublicKey: keyB, LastHandshake: time.Now()}, {PublicKey: keyC}}}
	if got := Switched(after, want); got[0].Key != keyB || !got[0].Next.IsZero() || got[1] != want[1] || want[0].Key != keyA {
		t.Errorf("after a handshake with the next key: %+v (want unchanged: %+v)", got, want)
	}
}
