package bench

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/overlaynet/overlaynet/internal/missgen"
	"github.com/overlaynet/overlaynet/rtnl"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// monitorBuffer is the receive buffer every consumer gets (forced, so the
// kernel allocates twice this).
const monitorBuffer = 32 << 20

// liveCounter counts the misses a consumer delivered and when the last one
// arrived.
type liveCounter struct {
	n    atomic.Int64
	last atomic.Int64 // UnixNano of the last delivery
}

func (c *liveCounter) add(k int64) {
	c.n.Add(k)
	c.last.Store(time.Now().UnixNano())
}

// consumer subscribes to the overlay namespace's RTNLGRP_NEIGH and counts
// L3 misses into c until stop is called; stop returns once its goroutines
// are gone.
type consumer func(tb testing.TB, lab *missgen.Lab, c *liveCounter) (stop func())

var consumers = []struct {
	name  string
	start consumer
}{
	{"rtnl", startRtnl},
	{"vishvananda", startVishvananda},
	{"floor", startFloor},
}

// startRtnl runs rtnl's Monitor.
func startRtnl(tb testing.TB, lab *missgen.Lab, c *liveCounter) func() {
	m, err := rtnl.DialMonitor(rtnl.MonitorConfig{NetNS: lab.Overlay, ReceiveBuffer: monitorBuffer})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Run(ctx, func(ev *rtnl.Event) error {
			if ev.Kind == rtnl.EventMiss && ev.Miss.Kind == rtnl.MissL3 {
				c.add(1)
			}
			return nil
		})
	}()
	return func() { cancel(); <-done; m.Close() }
}

// startVishvananda runs vishvananda/netlink's NeighSubscribeWithOptions in
// the overlay namespace with the same forced buffer, and a channel of 1024.
func startVishvananda(tb testing.TB, lab *missgen.Lab, c *liveCounter) func() {
	h, err := netns.GetFromPath(lab.Overlay.Path())
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan netlink.NeighUpdate, 1024)
	done := make(chan struct{})
	err = netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
		Namespace: &h, ReceiveBufferSize: monitorBuffer, ReceiveBufferForceSize: true,
	})
	if err != nil {
		h.Close()
		tb.Fatal(err)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for u := range ch {
			if u.Type == unix.RTM_GETNEIGH && u.IP != nil {
				c.add(1)
			}
		}
	}()
	return func() { close(done); <-finished; h.Close() }
}

// startFloor is the floor: a bare blocking recvmmsg loop (MSG_WAITFORONE:
// block for the first datagram, take what else is queued) on a socket like
// the others, counting datagrams and decoding nothing.
func startFloor(tb testing.TB, lab *missgen.Lab, c *liveCounter) func() {
	var fd int
	err := lab.Overlay.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, monitorBuffer); err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		// Wake up every 50 ms to notice stop.
		tv := unix.Timeval{Usec: 50_000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, 270, 1, 3) // NETLINK_ADD_MEMBERSHIP RTNLGRP_NEIGH
	})
	if err != nil {
		tb.Fatalf("floor socket: %v", err)
	}
	const vec, slot = 64, 4096
	buf := make([]byte, vec*slot)
	iovs := make([]unix.Iovec, vec)
	hdrs := make([]unix.Mmsghdr, vec)
	for i := range hdrs {
		iovs[i].Base = &buf[i*slot]
		iovs[i].SetLen(slot)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.SetIovlen(1)
	}
	var quit atomic.Bool
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for !quit.Load() {
			n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&hdrs[0])), vec, unix.MSG_WAITFORONE, 0, 0)
			if errno == 0 && n > 0 {
				c.add(int64(n))
			}
		}
	}()
	return func() { quit.Store(true); <-finished; unix.Close(fd) }
}

// targets hands out fresh target addresses so that every run asks for
// addresses no earlier run asked for (10.65.0.0 upwards).
type targets struct {
	mu   sync.Mutex
	next int
}

func (t *targets) take(n int) netip.Addr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.next+n > 1<<21 {
		t.next = 0
	}
	a := missgen.AddrAt(missgen.FirstTarget(), t.next)
	t.next += n
	return a
}

// waitDelivered waits until c counts want misses or stops growing for idle.
func waitDelivered(c *liveCounter, want int64, idle time.Duration) int64 {
	last, since := int64(-1), time.Now()
	for {
		n := c.n.Load()
		if n >= want {
			return n
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) > idle {
			return n
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkMonitor raises b.N L3 misses (ARP requests for distinct
// addresses, sent with sendmmsg from a container namespace into the overlay
// bridge) while a consumer reads them live. misses/s is what the consumer
// delivered divided by the time from the first send to the last delivery;
// lost is sent minus delivered. The generator and the consumer share the
// machine's cores, so a costlier consumer also slows the generator.
func BenchmarkMonitor(b *testing.B) {
	lab := missgen.NewLab(b)
	g := lab.Generator(b)
	var tg targets
	for _, cons := range consumers {
		b.Run(cons.name, func(b *testing.B) {
			var c liveCounter
			stop := cons.start(b, lab, &c)
			defer stop()
			first := tg.take(b.N)
			b.ResetTimer()
			start := time.Now()
			sent, err := g.ARP(first, b.N)
			if err != nil {
				b.Fatalf("generator: %v", err)
			}
			got := min(waitDelivered(&c, int64(sent), 500*time.Millisecond), int64(sent))
			b.StopTimer()
			elapsed := time.Duration(c.last.Load() - start.UnixNano())
			if got == 0 || elapsed <= 0 {
				elapsed = time.Since(start)
			}
			b.ReportMetric(float64(got)/elapsed.Seconds(), "misses/s")
			b.ReportMetric(float64(int64(sent)-got), "lost")
		})
	}
}

// TestVishvanandaSubscriptionEndsOnOverrun shows the failure rtnl's monitor
// is built to avoid: with the kernel's default receive buffer, a burst of
// misses overflows vishvananda/netlink's subscription socket, and its
// goroutine reports ENOBUFS to the error callback and closes the channel
// for good: misses raised afterwards reach no one.
// (rtnl's TestMonitorOverrunKeepsDelivering is the same situation with
// rtnl.Monitor, which reports EventOverrun and goes on.)
func TestVishvanandaSubscriptionEndsOnOverrun(t *testing.T) {
	lab := missgen.NewLab(t)
	g := lab.Generator(t)
	h, err := netns.GetFromPath(lab.Overlay.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ch := make(chan netlink.NeighUpdate) // unbuffered, as in the package's examples
	done := make(chan struct{})
	defer close(done)
	var mu sync.Mutex
	var cbErrs []error
	err = netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
		Namespace:     &h,
		ErrorCallback: func(err error) { mu.Lock(); cbErrs = append(cbErrs, err); mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	// The subscriber is busy (nobody reads the channel) while a burst arrives.
	if sent, err := g.ARP(missgen.FirstTarget(), 5000); err != nil || sent != 5000 {
		t.Fatalf("burst: sent %d: %v", sent, err)
	}
	received, closed := 0, false
	timeout := time.After(10 * time.Second)
	for !closed {
		select {
		case _, ok := <-ch:
			if !ok {
				closed = true
				continue
			}
			received++
		case <-timeout:
			t.Fatalf("channel still open after 10s, %d updates received", received)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("vishvananda: %d of 5000 misses delivered, then the channel closed; error callback: %v", received, cbErrs)
	if received >= 5000 {
		t.Errorf("all %d misses delivered: the burst did not overflow the default buffer", received)
	}
	if len(cbErrs) == 0 || !errors.Is(cbErrs[len(cbErrs)-1], unix.ENOBUFS) {
		t.Errorf("error callback got %v, want ENOBUFS last", cbErrs)
	}
}
