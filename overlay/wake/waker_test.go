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
	queue  [][]byte
	sent   [][]byte
	closed bool
}

func newFakeLink() *fakeLink { return &fakeLink{} }

func (l *fakeLink) capture(f []byte) {
	l.mu.Lock()
	l.queue = append(l.queue, f)
	l.mu.Unlock()
}

func (l *fakeLink) Receive(bufs [][]byte, lens []int) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, errors.New("closed")
	}
	n := 0
	for n < len(bufs) && len(l.queue) > 0 {
		lens[n] = copy(bufs[n], l.queue[0])
		if len(l.queue[0]) > lens[n] {
			lens[n] = len(l.queue[0])
		}
		l.queue = l.queue[1:]
		n++
	}
	return n, nil
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
	l.mu.Unlock()
	return nil
}

func (l *fakeLink) sentFrames() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sent
}

// TestWakerAnswersOnce: a request queued but not read yet is read by a
// miss's Answer itself and sent back once; an address never requested, and
// a second Answer, send nothing; frames that are no request are ignored; a
// read that started after the miss spares Answer its own; AnswerHeld sends
// only what was read.
func TestWakerAnswersOnce(t *testing.T) {
	l := newFakeLink()
	w := New(l, Config{})
	a, b, c := netip.MustParseAddr("10.65.0.1"), netip.MustParseAddr("fd00::7"), netip.MustParseAddr("10.65.0.3")
	l.capture(arpRequest(a))
	l.capture([]byte("not a request at all"))
	w.Answer(netip.MustParseAddr("10.65.0.9"), time.Now())
	w.Answer(a, time.Now())
	w.Answer(a, time.Now())
	if s := l.sentFrames(); len(s) != 1 || !bytes.Equal(s[0], arpRequest(a)) {
		t.Fatalf("sent %x, want the request for %s once", s, a)
	}

	l.capture(arpRequest(c))
	w.AnswerHeld(c) // not read yet: nothing to answer
	since := time.Now().Add(-time.Hour)
	w.read(0)
	l.capture(neighborSolicitation(b)) // queued after the read
	w.Answer(netip.AddrFrom16(b.As16()), since)
	if len(l.sentFrames()) != 1 {
		t.Fatalf("sent %d frames; a read after the miss must spare Answer its own (the request was read before)", len(l.sentFrames()))
	}
	w.Answer(netip.AddrFrom16(b.As16()), time.Now()) // a miss newer than the last read: Answer reads
	w.AnswerHeld(c)
	s := w.Stats()
	if s.Captured != 3 || s.Answered != 3 || w.ignored.Load() != 1 || len(l.sentFrames()) != 3 {
		t.Errorf("stats %+v ignored %d sent %d; want 3 captured, 3 answered, 1 ignored", s, w.ignored.Load(), len(l.sentFrames()))
	}
	var out strings.Builder
	Collector(w)(&out)
	for _, want := range []string{"overlayd_requests_captured_total 3\n", "overlayd_requests_answered_total 3\n",
		`overlayd_requests_dropped_total{reason="evicted"} 0`, "# TYPE overlayd_requests_expired_total counter"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("exposition lacks %q:\n%s", want, out.String())
		}
	}
}

// TestWakerRun: Run reads what was captured within DrainInterval, returns
// nil when its context ends, and closes the link.
func TestWakerRun(t *testing.T) {
	l := newFakeLink()
	w := New(l, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	l.capture(arpRequest(netip.MustParseAddr("10.65.0.1")))
	for deadline := time.Now().Add(DrainInterval + time.Second); w.Stats().Captured == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nothing read %v after the capture", DrainInterval+time.Second)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		t.Error("link not closed")
	}
}

// TestWakerFlood: a miss's Answer that finds more requests queued than it
// may read (a scan from a container) turns the flood mode on: the next
// Answers read nothing (counted, the exposition says so) and send only
// what was read before; Run's read of all the queue clears it once it
// finds at most calm requests, and Answers read again.
func TestWakerFlood(t *testing.T) {
	l := newFakeLink()
	w := New(l, Config{TableSize: 4096})
	scan := func(from, n int) {
		for i := range n {
			l.capture(arpRequest(netip.AddrFrom4([4]byte{10, 66, byte((from + i) >> 8), byte(from + i)})))
		}
	}
	legit := netip.MustParseAddr("10.65.0.1")
	scan(0, answerBatches*batch+calm+10)
	l.capture(arpRequest(legit))
	w.Answer(legit, time.Now())
	if !w.Stats().Flooded {
		t.Fatalf("not flooded after an Answer found %d requests queued", answerBatches*batch+calm+11)
	}
	if len(l.sentFrames()) != 0 {
		t.Fatalf("sent %d frames: the legit request was behind the flood, out of the bounded read", len(l.sentFrames()))
	}
	queued := func() int { l.mu.Lock(); defer l.mu.Unlock(); return len(l.queue) }
	before := queued()
	w.Answer(legit, time.Now())
	if queued() != before || w.Stats().FloodSkips != 1 {
		t.Fatalf("a flooded Answer read the capture (%d → %d queued) or was not counted (%+v)", before, queued(), w.Stats())
	}
	w.read(0) // Run's read: the rest of the flood (more than calm) and the legit request
	if !w.Stats().Flooded {
		t.Fatal("flood mode cleared by a read that found the flood")
	}
	w.Answer(legit, time.Now()) // sends what Run read (a second skip)
	if len(l.sentFrames()) != 1 {
		t.Fatalf("sent %d frames, want the legit request Run read", len(l.sentFrames()))
	}
	w.read(0) // a calm second: nothing queued
	if w.Stats().Flooded {
		t.Fatal("still flooded after a calm read")
	}
	b := netip.MustParseAddr("10.65.0.2")
	l.capture(arpRequest(b))
	w.Answer(b, time.Now())
	if len(l.sentFrames()) != 2 {
		t.Fatalf("once calm, an Answer must read its request again: sent %d", len(l.sentFrames()))
	}
	var out strings.Builder
	Collector(w)(&out)
	if !strings.Contains(out.String(), "overlayd_requests_flood_skips_total 2\n") {
		t.Errorf("exposition lacks the flood skip:\n%s", out.String())
	}
}
