package wake

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLink queues frames for Receive and records what is sent.
type fakeLink struct {
	mu     sync.Mutex
	cond   *sync.Cond
	queue  [][]byte
	sent   [][]byte
	closed bool
}

func newFakeLink() *fakeLink {
	l := &fakeLink{}
	l.cond = sync.NewCond(&l.mu)
	return l
}

func (l *fakeLink) capture(f []byte) {
	l.mu.Lock()
	l.queue = append(l.queue, f)
	l.cond.Broadcast()
	l.mu.Unlock()
}

func (l *fakeLink) Receive(b []byte, wait bool) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(l.queue) == 0 {
		if l.closed {
			return 0, errors.New("closed")
		}
		if !wait {
			return 0, nil
		}
		l.cond.Wait()
	}
	f := l.queue[0]
	l.queue = l.queue[1:]
	copy(b, f)
	return len(f), nil
}

func (l *fakeLink) Send(f []byte) error {
	l.mu.Lock()
	l.sent = append(l.sent, bytes.Clone(f))
	l.mu.Unlock()
	return nil
}

func (l *fakeLink) Close() error {
	l.mu.Lock()
	l.closed = true
	l.cond.Broadcast()
	l.mu.Unlock()
	return nil
}

func (l *fakeLink) sentFrames() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// TestWakerAnswersOnce: a request captured but not read by Run yet is
// read by Answer itself and sent back once; an address never requested,
// and a second Answer, send nothing; frames that are no request are
// ignored.
func TestWakerAnswersOnce(t *testing.T) {
	l := newFakeLink()
	w := New(l, Config{})
	a, b := netip.MustParseAddr("10.65.0.1"), netip.MustParseAddr("fd00::7")
	l.capture(arpRequest(a))
	l.capture([]byte("not a request at all"))
	w.Answer(netip.MustParseAddr("10.65.0.9"))
	w.Answer(a)
	w.Answer(a)
	if s := l.sentFrames(); len(s) != 1 || !bytes.Equal(s[0], arpRequest(a)) {
		t.Fatalf("sent %x, want the request for %s once", s, a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	l.capture(neighborSolicitation(b))
	deadline := time.Now().Add(5 * time.Second)
	for w.Stats().Captured < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	w.Answer(netip.AddrFrom16(b.As16()))
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	s := w.Stats()
	if s.Captured != 2 || s.Answered != 2 || w.ignored.Load() != 1 || len(l.sentFrames()) != 2 {
		t.Errorf("stats %+v ignored %d sent %d; want 2 captured, 2 answered, 1 ignored", s, w.ignored.Load(), len(l.sentFrames()))
	}
	var out strings.Builder
	Collector(w)(&out)
	for _, want := range []string{"overlayd_requests_captured_total 2\n", "overlayd_requests_answered_total 2\n",
		`overlayd_requests_dropped_total{reason="evicted"} 0`, "# TYPE overlayd_requests_expired_total counter"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("exposition lacks %q:\n%s", want, out.String())
		}
	}
}
