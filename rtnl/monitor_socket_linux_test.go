//go:build linux

package rtnl

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMonitorSocketReadSizes reads batches of different sizes through one
// monitor socket, some datagrams longer than a slot: each read returns
// every datagram queued (up to the vector's length) with its own length,
// sender and truncation, whatever the reads before it returned. The
// socket is a plain NETLINK_ROUTE socket in no group, fed by a second
// socket's unicasts: nothing of the machine's own notifications reaches
// it.
func TestMonitorSocketReadSizes(t *testing.T) {
	open := func() int {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			unix.Close(fd)
			t.Fatal(err)
		}
		return fd
	}
	port := func(fd int) uint32 {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		return sa.(*unix.SockaddrNetlink).Pid
	}
	const batch = 3
	s, err := newMonitorSocket(open(), batch)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sender := open()
	defer unix.Close(sender)
	to := &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: port(int(s.file.Fd()))}
	from := port(sender)

	type got struct {
		n     int
		first byte
		trunc bool
	}
	// Each step sends datagrams of these sizes (the first byte numbers
	// them) and reads until all came, batch at most per read.
	steps := [][]int{
		{20, monitorSlot + 900, 30}, // a full vector, the middle one truncated
		{40},                        // one: the others keep what the first read wrote
		{monitorSlot + 1, 10},       // the first truncated
		{64, 65, 66, 67},            // more than a vector: two reads
		{8},
	}
	num := byte(0)
	for i, sizes := range steps {
		var want []got
		for _, n := range sizes {
			num++
			b := make([]byte, n)
			b[0] = num
			if err := unix.Sendto(sender, b, 0, to); err != nil {
				t.Fatalf("step %d: send: %v", i, err)
			}
			want = append(want, got{n: min(n, monitorSlot), first: num, trunc: n > monitorSlot})
		}
		var all []got
		for reads := 0; len(all) < len(want); reads++ {
			ds, err := s.receive()
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if len(ds) == 0 || len(ds) > batch {
				t.Fatalf("step %d: a read returned %d datagrams (vector %d)", i, len(ds), batch)
			}
			for _, d := range ds {
				if d.pid != from {
					t.Errorf("step %d: datagram from port %d, want %d", i, d.pid, from)
				}
				all = append(all, got{n: len(d.b), first: d.b[0], trunc: d.trunc})
			}
		}
		if !slices.Equal(all, want) {
			t.Errorf("step %d: read %+v, want %+v", i, all, want)
		}
	}
}
