package rtnl_test

import (
	"errors"
	"testing"

	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// dummyLink is a raw RTM_NEWLINK body for a bridge named name, so the
// conn tests do not depend on the link codec.
func bridgeLink(name string) []byte {
	body := make([]byte, unix.SizeofIfInfomsg)
	ae := rtnl.NewAttributeEncoder(body)
	ae.String(unix.IFLA_IFNAME, name)
	li := ae.Begin(unix.IFLA_LINKINFO)
	ae.String(unix.IFLA_INFO_KIND, "bridge")
	ae.End(li)
	return ae.Bytes()
}

func TestConnExecuteDumpAndExtAck(t *testing.T) {
	ns, _ := nstest.NetNS(t, "cn")
	c := nstest.Dial(t, ns)

	if err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeLink("br0")); err != nil {
		t.Fatalf("create br0: %v", err)
	}
	err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeLink("br0"))
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("duplicate create: got %v, want EEXIST", err)
	}
	var oe *rtnl.OpError
	if !errors.As(err, &oe) || oe.Op != "RTM_NEWLINK" {
		t.Fatalf("duplicate create: got %#v, want *OpError for RTM_NEWLINK", err)
	}

	// An unknown link kind makes the kernel explain itself in an extended ACK.
	bad := rtnl.NewAttributeEncoder(make([]byte, unix.SizeofIfInfomsg))
	bad.String(unix.IFLA_IFNAME, "bad0")
	li := bad.Begin(unix.IFLA_LINKINFO)
	bad.String(unix.IFLA_INFO_KIND, "no-such-kind")
	bad.End(li)
	err = c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bad.Bytes())
	if !errors.As(err, &oe) || oe.Message == "" {
		t.Fatalf("unknown kind: got %v, want an extended-ACK message", err)
	}
	t.Logf("kernel said: %v", err)

	var names []string
	err = c.Dump(unix.RTM_GETLINK, make([]byte, unix.SizeofIfInfomsg), func(m rtnl.Message) error {
		ad := rtnl.NewAttributeDecoder(m.Data[unix.SizeofIfInfomsg:])
		for ad.Next() {
			if ad.Type() == unix.IFLA_IFNAME {
				names = append(names, ad.String())
			}
		}
		return ad.Err()
	})
	if err != nil {
		t.Fatalf("dump links: %v", err)
	}
	if len(names) != 2 || names[0] != "lo" || names[1] != "br0" {
		t.Fatalf("links = %v, want [lo br0]", names)
	}
}

func TestBatchReportsTheBadRequestAndAppliesTheRest(t *testing.T) {
	ns, name := nstest.NetNS(t, "cb")
	c := nstest.Dial(t, ns)
	var b rtnl.Batch
	const n = 50
	for i := 0; i < n; i++ {
		ifname := "d" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		if i == 17 {
			ifname = "daa" // duplicate of #0
		}
		b.Add(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeLink(ifname))
	}
	err := c.ExecuteBatch(&b)
	var be *rtnl.BatchError
	if !errors.As(err, &be) || len(be.Failures) != 1 || be.Failures[0].Index != 17 {
		t.Fatalf("got %v, want one failure at #17", err)
	}
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("got %v, want EEXIST inside", err)
	}
	out := nstest.Run(t, name, "ip", "-o", "link", "show", "type", "bridge")
	if got := len(splitLines(out)); got != n-1 {
		t.Fatalf("%d bridges, want %d:\n%s", got, n-1, out)
	}
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

// TestConnIgnoresRepliesNotFromTheKernel forges an error ACK from another
// netlink socket for the sequence number of the Conn's next request: the
// Conn must ignore it and wait for the kernel's real ACK.
func TestConnIgnoresRepliesNotFromTheKernel(t *testing.T) {
	ns, _ := nstest.NetNS(t, "cf")
	c := nstest.Dial(t, ns)

	var fd int
	if err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	// An NLMSG_ERROR with EPERM answering sequence 1 (the Conn's first request).
	body := make([]byte, 4, 4+rtnl.HeaderLen)
	e := int32(-int32(unix.EPERM))
	body[0], body[1], body[2], body[3] = byte(e), byte(e>>8), byte(e>>16), byte(e>>24)
	body = rtnl.AppendHeader(body, rtnl.Header{Length: rtnl.HeaderLen, Type: unix.RTM_NEWLINK, Sequence: 1, PID: c.PortID()})
	forged := rtnl.AppendHeader(nil, rtnl.Header{Length: uint32(rtnl.HeaderLen + len(body)), Type: unix.NLMSG_ERROR, Sequence: 1, PID: c.PortID()})
	forged = append(forged, body...)
	if err := unix.Sendto(fd, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: c.PortID()}); err != nil {
		t.Fatalf("forge: %v", err)
	}
	if err := c.Execute(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL, bridgeLink("brf")); err != nil {
		t.Fatalf("the forged EPERM was taken for the kernel's answer: %v", err)
	}
}
