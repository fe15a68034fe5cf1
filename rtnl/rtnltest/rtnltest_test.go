package rtnltest_test

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/overlaynet/overlaynet/rtnl/rtnltest"
)

var (
	testMAC = ethaddr.MAC{0x02, 0x42, 0xc6, 0x33, 0x64, 0x02}
	testIP  = netip.MustParseAddr("198.51.100.2")
)

// TestExecuteRecordsAndAcks: a request is recorded as sent (type, flags,
// body that decodes to the message) and its ACK ends Execute with nil.
func TestExecuteRecordsAndAcks(t *testing.T) {
	c, tr := rtnltest.Dial(nil)
	defer c.Close()
	want := rtnl.ARPEntry{Ifindex: 7, IP: testIP, MAC: testMAC}.Message()
	if err := c.NeighAdd(want); err != nil {
		t.Fatalf("NeighAdd: %v", err)
	}
	reqs := tr.Requests()
	if len(reqs) != 1 {
		t.Fatalf("recorded %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Type() != rtnl.MsgNewNeigh {
		t.Errorf("type %s, want RTM_NEWNEIGH", rtnl.MessageTypeName(r.Type()))
	}
	if wantFlags := uint16(rtnl.FlagRequest | rtnl.FlagAck | rtnl.FlagCreate | rtnl.FlagExcl); r.Flags() != wantFlags {
		t.Errorf("flags %s, want %s", rtnltest.FlagsString(r.Type(), r.Flags()), rtnltest.FlagsString(r.Type(), wantFlags))
	}
	var got rtnl.NeighMessage
	if err := r.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Ifindex != 7 || got.Dst != testIP || got.State != rtnl.NeighPermanent {
		t.Errorf("decoded %v, want ifindex 7 dst %v PERMANENT", &got, testIP)
	}
	if mac, ok := got.MAC(); !ok || mac != testMAC {
		t.Errorf("lladdr %v, want %v", mac, testMAC)
	}
	if s := r.String(); !strings.HasPrefix(s, "RTM_NEWNEIGH REQUEST|ACK|EXCL|CREATE seq=1 len=") {
		t.Errorf("String() = %q", s)
	}
	if n := tr.Pending(); n != 0 {
		t.Errorf("%d reply datagrams left unread", n)
	}
}

// TestExecuteErrors: the failures a Handler scripts reach the caller as the
// kernel's would (an *rtnl.OpError naming the request, wrapping the errno,
// with the extended-ACK text and offset), and a transport failure as a
// socket error.
func TestExecuteErrors(t *testing.T) {
	broken := errors.New("cable cut")
	tests := []struct {
		name       string
		err        error
		wantErrno  syscall.Errno
		wantMsg    string
		wantOffset uint32
		wantOp     string
		wantBroken bool
	}{
		{name: "errno", err: syscall.EEXIST, wantErrno: syscall.EEXIST, wantOp: "RTM_NEWNEIGH"},
		{name: "extended ack", err: &rtnltest.Error{Errno: syscall.EINVAL, Message: "Invalid neighbor state", Offset: 24},
			wantErrno: syscall.EINVAL, wantMsg: "Invalid neighbor state", wantOffset: 24, wantOp: "RTM_NEWNEIGH"},
		{name: "wrapped errno", err: fmt.Errorf("no such device: %w", syscall.ENODEV), wantErrno: syscall.ENODEV, wantOp: "RTM_NEWNEIGH"},
		{name: "transport", err: broken, wantOp: "sendmsg", wantBroken: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, tr := rtnltest.Dial(rtnltest.Fail(tt.err))
			defer c.Close()
			err := c.NeighAdd(rtnl.ARPEntry{Ifindex: 7, IP: testIP, MAC: testMAC}.Message())
			var oe *rtnl.OpError
			if !errors.As(err, &oe) {
				t.Fatalf("error %v (%T), want an *rtnl.OpError", err, err)
			}
			if oe.Op != tt.wantOp {
				t.Errorf("Op %q, want %q", oe.Op, tt.wantOp)
			}
			if tt.wantBroken {
				if !errors.Is(err, broken) {
					t.Errorf("error %v does not wrap the transport's", err)
				}
				if n := tr.Pending(); n != 0 {
					t.Errorf("%d replies queued for a request the transport failed", n)
				}
				return
			}
			if !errors.Is(err, tt.wantErrno) {
				t.Errorf("error %v is not %v", err, tt.wantErrno)
			}
			if oe.Message != tt.wantMsg || oe.Offset != tt.wantOffset {
				t.Errorf("extended ack %q at %d, want %q at %d", oe.Message, oe.Offset, tt.wantMsg, tt.wantOffset)
			}
		})
	}
}

// neighReplies returns n RTM_NEWNEIGH dump replies, entry i for 10.0.x.y.
func neighReplies(n int) []rtnltest.Message {
	msgs := make([]rtnltest.Message, n)
	for i := range msgs {
		ip := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		msgs[i] = rtnltest.Reply(rtnl.MsgNewNeigh, rtnl.ARPEntry{Ifindex: 3, IP: ip, MAC: testMAC}.Message())
	}
	return msgs
}

// TestDump: a dump larger than one datagram arrives in several, every entry
// in order, NLM_F_MULTI set, and ends at NLMSG_DONE.
func TestDump(t *testing.T) {
	const n = 1500 // ~60 bytes each: three datagrams of at most 32 KiB
	var handled []rtnltest.Request
	var tr *rtnltest.Transport
	c, tr := rtnltest.Dial(func(req rtnltest.Request) ([]rtnltest.Message, error) {
		handled = tr.Requests() // a Handler may read the Transport
		return neighReplies(n), nil
	})
	defer c.Close()
	var got []netip.Addr
	err := c.Dump(rtnl.MsgGetNeigh, make([]byte, 12), func(m rtnl.Message) error {
		if m.Header.Flags&rtnl.FlagMulti == 0 {
			t.Errorf("dump reply without NLM_F_MULTI: %#x", m.Header.Flags)
		}
		var nm rtnl.NeighMessage
		if err := nm.UnmarshalBinary(m.Data); err != nil {
			return err
		}
		got = append(got, nm.Dst)
		return nil
	})
	if err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if len(got) != n {
		t.Fatalf("got %d entries, want %d", len(got), n)
	}
	for i, a := range got {
		if want := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}); a != want {
			t.Fatalf("entry %d is %v, want %v", i, a, want)
		}
	}
	reqs := tr.Requests()
	if len(reqs) != 1 || !reqs[0].IsDump() || reqs[0].Flags()&rtnl.FlagAck != 0 {
		t.Errorf("requests %v, want one dump without ACK", reqs)
	}
	if len(handled) != 1 {
		t.Errorf("the handler saw %d recorded requests, want 1", len(handled))
	}
	if tr.Pending() != 0 {
		t.Errorf("%d datagrams unread after NLMSG_DONE", tr.Pending())
	}
}

// TestDumpOutcomes: a dump's error travels in NLMSG_DONE after the
// entries, and NLM_F_DUMP_INTR on a part makes Dump return
// ErrDumpInterrupted with every entry delivered.
func TestDumpOutcomes(t *testing.T) {
	intr := neighReplies(3)
	intr[1].Flags |= rtnl.FlagDumpIntr
	tests := []struct {
		name    string
		h       rtnltest.Handler
		want    int
		wantErr func(error) bool
	}{
		{"empty", rtnltest.AckAll, 0, func(err error) bool { return err == nil }},
		{"entries", rtnltest.Messages(neighReplies(3)...), 3, func(err error) bool { return err == nil }},
		{"interrupted", rtnltest.Messages(intr...), 3, func(err error) bool { return errors.Is(err, rtnl.ErrDumpInterrupted) }},
		{"error in done", func(rtnltest.Request) ([]rtnltest.Message, error) {
			return neighReplies(2), &rtnltest.Error{Errno: syscall.EINVAL, Message: "Invalid values in header for neighbor dump request"}
		}, 2, func(err error) bool {
			var oe *rtnl.OpError
			return errors.Is(err, syscall.EINVAL) && errors.As(err, &oe) && oe.Op == "RTM_GETNEIGH" &&
				oe.Message == "Invalid values in header for neighbor dump request"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := rtnltest.Dial(tt.h)
			defer c.Close()
			n := 0
			err := c.Dump(rtnl.MsgGetNeigh, make([]byte, 12), func(rtnl.Message) error { n++; return nil })
			if !tt.wantErr(err) {
				t.Errorf("Dump: unexpected error %v", err)
			}
			if n != tt.want {
				t.Errorf("delivered %d entries, want %d", n, tt.want)
			}
		})
	}
}

// TestRequestGet: a get request's reply is delivered before its ACK.
func TestRequestGet(t *testing.T) {
	link := &rtnl.LinkMessage{Index: 5, Name: "vxlan1", MTU: 1450}
	c, tr := rtnltest.Dial(func(req rtnltest.Request) ([]rtnltest.Message, error) {
		var q rtnl.LinkMessage
		if err := req.Decode(&q); err != nil {
			return nil, err
		}
		if q.Name != link.Name {
			return nil, &rtnltest.Error{Errno: syscall.ENODEV, Message: "no such link " + q.Name}
		}
		return []rtnltest.Message{rtnltest.Reply(rtnl.MsgNewLink, link)}, nil
	})
	defer c.Close()
	got, err := c.LinkByName("vxlan1")
	if err != nil {
		t.Fatalf("LinkByName: %v", err)
	}
	if got.Index != 5 || got.Name != "vxlan1" || got.MTU != 1450 {
		t.Errorf("got link %d %q mtu %d", got.Index, got.Name, got.MTU)
	}
	if _, err := c.LinkByName("eth9"); !errors.Is(err, syscall.ENODEV) {
		t.Errorf("LinkByName(eth9): %v, want ENODEV", err)
	}
	for _, r := range tr.Requests() {
		if r.Type() != rtnl.MsgGetLink || r.Flags() != rtnl.FlagRequest|rtnl.FlagAck {
			t.Errorf("request %v, want RTM_GETLINK REQUEST|ACK", r)
		}
	}
}

// TestExecuteBatch: the requests of a batch are split into datagrams as the
// receive buffer allows, only the last of each asks for an ACK, and the
// failures come back per request in a *rtnl.BatchError.
func TestExecuteBatch(t *testing.T) {
	const n = 10
	fail := map[int]syscall.Errno{3: syscall.EEXIST, 4: syscall.ENODEV, 9: syscall.EINVAL}
	i := 0
	// A receive buffer of 8192 bytes (a socket asked for 4096) has room for 4
	// error replies per sendmsg.
	tr := rtnltest.New(func(req rtnltest.Request) ([]rtnltest.Message, error) {
		defer func() { i++ }()
		if e, ok := fail[i]; ok {
			return nil, e
		}
		return nil, nil
	})
	tr.ReceiveBuffer = 8192
	c := rtnl.NewConn(tr)
	defer c.Close()
	var b rtnl.Batch
	for k := range n {
		ip := netip.AddrFrom4([4]byte{10, 0, 0, byte(k)})
		if err := b.NeighReplace(rtnl.ARPEntry{Ifindex: 3, IP: ip, MAC: testMAC}.Message()); err != nil {
			t.Fatal(err)
		}
	}
	err := c.ExecuteBatch(&b)
	var be *rtnl.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("ExecuteBatch: %v, want a *rtnl.BatchError", err)
	}
	if be.Total != n || len(be.Failures) != len(fail) {
		t.Fatalf("BatchError %v: want %d failures of %d", be, len(fail), n)
	}
	for _, f := range be.Failures {
		want, ok := fail[f.Index]
		var oe *rtnl.OpError
		if !ok || !errors.Is(f.Err, want) || !errors.As(f.Err, &oe) || oe.Op != "RTM_NEWNEIGH" {
			t.Errorf("failure #%d: %v, want %v on RTM_NEWNEIGH", f.Index, f.Err, want)
		}
	}
	if !errors.Is(err, syscall.ENODEV) {
		t.Errorf("errors.Is(BatchError, ENODEV) is false")
	}
	reqs := tr.Requests()
	if len(reqs) != n || tr.Datagrams() != 3 {
		t.Fatalf("%d requests in %d datagrams, want %d in 3", len(reqs), tr.Datagrams(), n)
	}
	var dgs []int
	for k, r := range reqs {
		dgs = append(dgs, r.Datagram)
		last := k == n-1 || reqs[k+1].Datagram != r.Datagram
		if gotAck := r.Flags()&rtnl.FlagAck != 0; gotAck != last {
			t.Errorf("request %d (%v): ACK %v, want %v", k, r, gotAck, last)
		}
		if r.Header.Sequence != reqs[0].Header.Sequence+uint32(k) {
			t.Errorf("request %d has sequence %d, want consecutive numbers", k, r.Header.Sequence)
		}
	}
	if want := []int{0, 0, 0, 0, 1, 1, 1, 1, 2, 2}; !slices.Equal(dgs, want) {
		t.Errorf("datagram of each request %v, want %v", dgs, want)
	}
	if tr.Pending() != 0 {
		t.Errorf("%d replies left unread", tr.Pending())
	}
	// The Conn goes on working after a partly failed batch.
	if err := c.NeighDelete(rtnl.ARPEntry{Ifindex: 3, IP: testIP, MAC: testMAC}.Message()); err != nil {
		t.Errorf("NeighDelete after the batch: %v", err)
	}
}

// TestTransportMisuse: what would hang or crash a test fails instead.
func TestTransportMisuse(t *testing.T) {
	tr := rtnltest.New(nil)
	if _, err := tr.Receive(make([]byte, 64)); !errors.Is(err, rtnltest.ErrNoReply) {
		t.Errorf("Receive with nothing queued: %v, want ErrNoReply", err)
	}
	if err := tr.Send([]byte{1, 2, 3}); err == nil {
		t.Error("Send of a 3-byte datagram succeeded")
	}
	c, tr := rtnltest.Dial(rtnltest.Script(rtnltest.AckAll))
	if err := c.LinkSetUp(1); err != nil {
		t.Fatalf("first scripted request: %v", err)
	}
	err := c.LinkSetUp(2)
	if err == nil || !strings.Contains(err.Error(), "unscripted request #1: RTM_NEWLINK") {
		t.Errorf("request beyond the script: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Send(nil); !errors.Is(err, rtnltest.ErrClosed) {
		t.Errorf("Send after the Conn closed: %v, want ErrClosed", err)
	}
	tr.Reset()
	if len(tr.Requests()) != 0 || tr.Datagrams() != 0 {
		t.Errorf("Reset kept %d requests, %d datagrams", len(tr.Requests()), tr.Datagrams())
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		typ, flags uint16
		want       string
	}{
		{rtnl.MsgNewNeigh, rtnl.FlagRequest | rtnl.FlagAck | rtnl.FlagCreate | rtnl.FlagReplace, "REQUEST|ACK|REPLACE|CREATE"},
		{rtnl.MsgGetNeigh, rtnl.FlagRequest | rtnl.FlagDump, "REQUEST|DUMP"},
		{rtnl.MsgGetLink, rtnl.FlagRequest | rtnl.FlagRoot, "REQUEST|ROOT"},
		{rtnl.MsgDelLink, rtnl.FlagRequest | 0x8000, "REQUEST|0x8000"},
		{rtnl.MsgNewLink, 0, "0"},
	}
	for _, tt := range tests {
		if got := rtnltest.FlagsString(tt.typ, tt.flags); got != tt.want {
			t.Errorf("FlagsString(%s, %#x) = %q, want %q", rtnl.MessageTypeName(tt.typ), tt.flags, got, tt.want)
		}
	}
}
