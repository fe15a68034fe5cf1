package bench

import (
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/jsimonetti/rtnetlink"
	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/golden"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/vishvananda/netlink"
)

// resolverView is what a miss resolver needs from a notification.
type resolverView struct {
	Family  uint8
	Ifindex int32
	State   uint16
	IP      netip.Addr
	MAC     ethaddr.MAC
}

// sink keeps the compiler from discarding decodes.
var sink resolverView

// decoders decode one full netlink message (header included) into a
// resolverView. The peers take the payload after the 16-byte header, as
// their subscription code hands it to them; rtnl parses the header too
// (rtnl.Classify).
var decoders = []struct {
	name   string
	decode func(raw []byte, v *resolverView) error
}{
	{"rtnl", decodeRtnl()},
	{"vishvananda", decodeVishvananda},
	{"jsimonetti", decodeJsimonetti},
}

func decodeRtnl() func([]byte, *resolverView) error {
	var ev rtnl.Event
	return func(raw []byte, v *resolverView) error {
		if _, err := rtnl.Classify(raw, &ev); err != nil {
			return err
		}
		switch ev.Kind {
		case rtnl.EventMiss:
			m := &ev.Miss
			*v = resolverView{Family: m.Family, Ifindex: m.Ifindex, State: uint16(m.State), IP: m.IP, MAC: m.MAC}
		default:
			n := &ev.Neigh
			mac, _ := n.MAC()
			*v = resolverView{Family: n.Family, Ifindex: n.Ifindex, State: uint16(n.State), IP: n.Dst, MAC: mac}
		}
		return nil
	}
}

func decodeVishvananda(raw []byte, v *resolverView) error {
	n, err := netlink.NeighDeserialize(raw[rtnl.HeaderLen:])
	if err != nil {
		return err
	}
	ip, _ := netip.AddrFromSlice(n.IP)
	*v = resolverView{Family: uint8(n.Family), Ifindex: int32(n.LinkIndex), State: uint16(n.State), IP: ip.Unmap(), MAC: mac6(n.HardwareAddr)}
	return nil
}

func decodeJsimonetti(raw []byte, v *resolverView) error {
	var n rtnetlink.NeighMessage
	if err := n.UnmarshalBinary(raw[rtnl.HeaderLen:]); err != nil {
		return err
	}
	*v = resolverView{Family: uint8(n.Family), Ifindex: int32(n.Index), State: n.State}
	if n.Attributes != nil {
		ip, _ := netip.AddrFromSlice(n.Attributes.Address)
		v.IP, v.MAC = ip.Unmap(), mac6(n.Attributes.LLAddress)
	}
	return nil
}

func mac6(hw net.HardwareAddr) ethaddr.MAC {
	if len(hw) != 6 {
		return ethaddr.MAC{}
	}
	return ethaddr.MAC(hw)
}

// missKinds are the captured kernel messages, one per file in
// testdata/kernel (nlmsghdr included).
var missKinds = []string{"l3miss", "l3miss_v6", "l2miss", "app_solicit", "fdb_echo"}

func readKernel(tb testing.TB, kind string) []byte {
	tb.Helper()
	raw, err := golden.Read(filepath.Join("..", "testdata", "kernel"), kind)
	if err != nil {
		tb.Fatalf("golden kernel message: %v", err)
	}
	return raw
}

// TestDecodersAgree checks that every implementation reads the same
// resolver fields from every captured message, so the benchmark compares
// like with like.
func TestDecodersAgree(t *testing.T) {
	for _, kind := range missKinds {
		raw := readKernel(t, kind)
		var want resolverView
		for i, d := range decoders {
			var got resolverView
			if err := d.decode(raw, &got); err != nil {
				t.Errorf("%s/%s: %v", kind, d.name, err)
				continue
			}
			if i == 0 {
				want = got
				if want.Ifindex == 0 || (!want.IP.IsValid() && want.MAC.IsZero()) {
					t.Errorf("%s/%s: decoded nothing useful: %+v", kind, d.name, got)
				}
				continue
			}
			if got != want {
				t.Errorf("%s: %s read %+v, rtnl %+v", kind, d.name, got, want)
			}
		}
	}
}

func BenchmarkDecodeMiss(b *testing.B) {
	for _, kind := range missKinds {
		raw := readKernel(b, kind)
		b.Run(kind, func(b *testing.B) {
			for _, d := range decoders {
				b.Run(d.name, func(b *testing.B) {
					b.ReportAllocs()
					b.SetBytes(int64(len(raw)))
					var v resolverView
					for b.Loop() {
						if err := d.decode(raw, &v); err != nil {
							b.Fatal(err)
						}
					}
					sink = v
				})
			}
		})
	}
}
