package rtnl_test

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/overlaynet/overlaynet/internal/golden"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

// FuzzClassify feeds arbitrary netlink messages to the classifier: it must
// never panic, and a miss it accepts must agree with the general neighbour
// decoder and with its own rules.
func FuzzClassify(f *testing.F) {
	for _, name := range []string{"l3miss", "l3miss_v6", "l2miss", "app_solicit", "app_solicit_probe", "fdb_echo"} {
		raw, err := golden.Read(goldenDir, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		h, body, err := rtnl.ParseHeader(raw)
		if err != nil {
			if len(raw) < rtnl.HeaderLen {
				return
			}
			// Classify any payload under the claimed header anyway.
			h = rtnl.Header{Type: binary.NativeEndian.Uint16(raw[4:6]), Flags: binary.NativeEndian.Uint16(raw[6:8])}
			body = raw[rtnl.HeaderLen:]
		}
		var ev rtnl.Event
		ok, err := rtnl.ClassifyPayload(h, body, &ev)
		if ok && err != nil {
			t.Fatalf("ok with error %v", err)
		}
		// Classify reads the header itself and must agree.
		var ev2 rtnl.Event
		ok2, err2 := rtnl.Classify(raw, &ev2)
		if ok2 && err2 != nil {
			t.Fatalf("Classify: ok with error %v", err2)
		}
		if _, _, perr := rtnl.ParseHeader(raw); perr == nil {
			if ok2 != ok || (err2 == nil) != (err == nil) || (ok && (ev2.Kind != ev.Kind || ev2.Miss != ev.Miss || ev2.PortID != ev.PortID)) {
				t.Fatalf("Classify (%v, %v, %+v) disagrees with ClassifyPayload (%v, %v, %+v)", ok2, err2, ev2.Miss, ok, err, ev.Miss)
			}
		} else if ok2 || err2 == nil {
			t.Fatalf("Classify accepted a message ParseHeader rejects: %v", perr)
		}
		if !ok || ev.Kind != rtnl.EventMiss {
			return
		}
		m := ev.Miss
		switch m.Kind {
		case rtnl.MissL3:
			if !m.IP.IsValid() || h.Flags&rtnl.FlagRequest != 0 {
				t.Fatalf("L3 miss %+v with flags %#x", m, h.Flags)
			}
		case rtnl.MissL2:
			if m.IP.IsValid() || !m.HasMAC {
				t.Fatalf("L2 miss %+v", m)
			}
		case rtnl.MissAppSolicit:
			if !m.IP.IsValid() || h.Flags&rtnl.FlagRequest == 0 {
				t.Fatalf("app_solicit %+v with flags %#x", m, h.Flags)
			}
		default:
			t.Fatalf("miss of kind %v", m.Kind)
		}
		if m.Family != rtnl.FamilyInet && m.Family != rtnl.FamilyInet6 {
			t.Fatalf("miss of family %d", m.Family)
		}
		// Where the general decoder accepts the same bytes, both agree.
		var n rtnl.NeighMessage
		if n.UnmarshalBinary(body) != nil {
			return
		}
		mac, hasMAC := n.MAC()
		if n.Dst != m.IP || n.Ifindex != m.Ifindex || n.State != m.State || hasMAC != m.HasMAC || mac != m.MAC ||
			n.Probes != m.Probes || n.VNI != m.VNI || n.Present.Has(rtnl.NeighAttrVNI) != m.HasVNI ||
			n.LinkNetnsID != m.LinkNetnsID {
			t.Fatalf("classifier %+v disagrees with NeighMessage %v", m, &n)
		}
	})
}

// FuzzMonitorDatagram feeds arbitrary datagrams to a Monitor over a
// Transport, through the read loop and the per-datagram framing a socket's
// datagrams go through, under each filter: Run must not panic, must end
// with the stream, must count each event once, and, for a datagram of one
// message (as the kernel sends notifications), must deliver only what the
// filter keeps. The filter, like the socket's BPF program, judges a
// datagram by its first message.
func FuzzMonitorDatagram(f *testing.F) {
	var prev []byte
	for _, name := range []string{"l3miss", "l2miss", "app_solicit", "fdb_echo"} {
		raw, err := golden.Read(goldenDir, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw, uint8(0))
		// Packed datagrams: two of a kind; a change then a miss, kept
		// whole by MonitorChanges, which judges by the first message.
		f.Add(append(raw, raw...), uint8(1))
		f.Add(append(append([]byte{}, raw...), prev...), uint8(2))
		prev = raw
	}
	f.Fuzz(func(t *testing.T, d []byte, filter uint8) {
		fl := rtnl.MonitorFilter(filter % 3)
		kernel := rtnltest.NewNotifier()
		kernel.Datagram(d)
		kernel.End()
		m := rtnl.NewMonitor(kernel, fl)
		defer m.Close()
		single := len(d) >= rtnl.HeaderLen && rtnl.Align(int(binary.NativeEndian.Uint32(d))) >= len(d)
		var events uint64
		err := m.Run(context.Background(), func(ev *rtnl.Event) error {
			events++
			switch {
			case !single:
			case fl == rtnl.MonitorMisses && ev.Kind != rtnl.EventMiss,
				fl == rtnl.MonitorChanges && ev.Kind == rtnl.EventMiss:
				t.Fatalf("filter %v delivered %v", fl, ev.Kind)
			}
			return nil
		})
		if len(d) > 4096 {
			if err == nil {
				t.Fatalf("a %d-byte datagram fit a 4096-byte buffer", len(d))
			}
			return
		}
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		st := m.Stats()
		if delivered := st.Misses() + st.NeighAdds + st.NeighDeletes; delivered != events || st.Messages < events ||
			st.Datagrams > 1 || st.Messages > st.Ignored+st.DecodeErrors+events {
			t.Fatalf("%d events, stats %+v", events, st)
		}
	})
}
