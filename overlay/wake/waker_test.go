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

// gatedLink is a fakeLink whose sends wait for the gate, while it is shut.
type gatedLink struct {
	*fakeLink
	gate chan struct{} // closed: open
	in   chan struct{} // a send arrived at the gate
}

func (l *gatedLink) Send(f []byte) error {
	select {
	case l.in <- struct{}{}:
	default:
	}
	<-l.gate
	return l.fakeLink.Send(f)
}

// TestWakerAnswerThread: while Run runs, Answer hands the answer to Run's
// thread and returns without waiting for its send (the gate is shut); the
// answers queued meanwhile are made once the thread is free, each request
// sent once; with maxQueued Answers waiting, the next one is made by its
// caller (counted, in the exposition too); once Run has returned, Answer
// is made by its caller again.
func TestWakerAnswerThread(t *testing.T) {
	l := &gatedLink{fakeLink: newFakeLink(), gate: make(chan struct{}), in: make(chan struct{}, 1)}
	w := New(l, Config{TableSize: 2 * maxQueued})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	if !waitFor(5*time.Second, func() bool { w.qmu.Lock(); defer w.qmu.Unlock(); return w.threaded }) {
		t.Fatal("Run did not start its answer thread within 5 s")
	}
	ip := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 65, byte(i >> 8), byte(i)}) }
	for i := range maxQueued + 1 {
		l.capture(arpRequest(ip(i)))
	}
	w.read(0) // as Run's drain does: too many for an Answer's bounded read
	handed := make(chan struct{})
	go func() { w.Answer(ip(0), time.Now()); close(handed) }()
	select {
	case <-handed: // returned while its send waits at the gate
	case <-time.After(5 * time.Second):
		t.Fatal("Answer did not return within 5 s: it waited for its send instead of handing it to Run's thread")
	}
	select {
	case <-l.in:
	case <-time.After(5 * time.Second):
		t.Fatal("the answer thread did not send within 5 s")
	}
	for i := 1; i <= maxQueued; i++ {
		w.Answer(ip(i), time.Now())
	}
	// Stats would wait for the table's lock, which the send at the gate holds.
	if in, ans := w.inline.Load(), w.answered.Load(); in != 0 || ans != 0 {
		t.Fatalf("with %d Answers queued: %d made inline, %d answered, want none made yet", maxQueued, in, ans)
	}
	inline := make(chan struct{})
	go func() { w.Answer(ip(0), time.Now()); close(inline) }() // one too many: made here, at the gate too
	if !waitFor(5*time.Second, func() bool { return w.inline.Load() == 1 }) {
		t.Fatalf("the Answer past %d queued was not made by its caller: %d made inline", maxQueued, w.inline.Load())
	}
	close(l.gate)
	<-inline
	if !waitFor(5*time.Second, func() bool { return w.Stats().Answered == maxQueued+1 }) {
		t.Fatalf("answered %d, want %d (each request once)", w.Stats().Answered, maxQueued+1)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := len(l.sentFrames()); got != maxQueued+1 {
		t.Fatalf("sent %d frames, want %d", got, maxQueued+1)
	}
	var out strings.Builder
	Collector(w)(&out)
	if !strings.Contains(out.String(), "overlayd_requests_answered_inline_total 1\n") {
		t.Errorf("exposition lacks the answer made inline:\n%s", out.String())
	}
	l.fakeLink.mu.Lock()
	l.fakeLink.closed = false // Run closed it; the caller's Answer reads it below
	l.fakeLink.mu.Unlock()
	b := netip.MustParseAddr("10.66.0.1")
	l.capture(arpRequest(b))
	w.Answer(b, time.Now())
	if got := len(l.sentFrames()); got != maxQueued+2 {
		t.Fatalf("after Run: sent %d frames, want the caller's Answer made at once (%d)", got, maxQueued+2)
	}
}
