package resolver

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

// gatedKernel holds its first batch until open is closed, and records the
// size of every batch.
type gatedKernel struct {
	fakeKernel
	open    chan struct{}
	entered chan struct{}
	once    sync.Once
}

func (k *gatedKernel) ExecuteBatch(b *rtnl.Batch) error {
	k.once.Do(func() {
		close(k.entered)
		<-k.open
	})
	return k.fakeKernel.ExecuteBatch(b)
}

// TestProgrammerMissesFirst: a miss's resolution queued behind a backlog of
// feed changes goes in the very next batch, with at most bulkMax of the
// feed's changes beside it.
func TestProgrammerMissesFirst(t *testing.T) {
	k := &gatedKernel{open: make(chan struct{}), entered: make(chan struct{})}
	r, _ := newTestResolver(t, newFakeRegistry(), k, nil)
	p := r.prog
	feedRes := func(i int) *resolution {
		ip := netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		return &resolution{action: "programmed from feed", ops: []progOp{
			{kind: opSetNeigh, ifindex: testVxlan, ip: ip, mac: macN(byte(i))},
			{kind: opSetFDB, mac: macN(byte(i)), vtep: netip.MustParseAddr("192.0.2.3")},
		}}
	}
	ctx := context.Background()
	done := make(chan struct{})
	go func() { p.submit(ctx, feedRes(0)); close(done) }() // the sender, held in the kernel
	<-k.entered
	for i := 1; i <= 300; i++ { // 600 changes of backlog
		p.submit(ctx, feedRes(i))
	}
	key := missKey{kind: rtnl.MissL2, mac: macN(200)}
	if r.table.admit(key) != admitLookup {
		t.Fatal("miss not admitted")
	}
	miss := newMissResolution(key, r.seams.now())
	miss.ops = append(miss.ops, progOp{kind: opSetFDB, mac: macN(200), vtep: netip.MustParseAddr("192.0.2.4")})
	miss.table = r.table
	p.submit(ctx, miss) // queued: a batch is in flight
	close(k.open)
	<-done
	sizes := k.sizes()
	if len(sizes) < 2 {
		t.Fatalf("batches %v", sizes)
	}
	// The miss is the only single change: the batch holding it has an odd
	// size.
	if sizes[1]%2 != 1 || sizes[1] > 1+p.bulkMax {
		t.Errorf("batches %v: the second batch should hold the miss and at most %d feed changes", sizes, p.bulkMax)
	}
	total := 0
	for _, n := range sizes {
		total += n
	}
	if total != 2*301+1 {
		t.Errorf("batches %v carry %d changes, want %d", sizes, total, 2*301+1)
	}
}

// TestProgrammerOrdersFDBFirst: whatever order a producer gives a
// resolution's ops, the programmer sends them in fdbFirst's order —
// neighbour entries deleted, FDB entries set, neighbour entries set, FDB
// entries deleted — leaving the resolution's ops where they are, each with
// the result of its own request (the kernel fails every request with its
// index in the batch).
func TestProgrammerOrdersFDBFirst(t *testing.T) {
	fail := map[int]error{}
	for i := range 5 {
		fail[i] = fmt.Errorf("request %d", i)
	}
	k := &fakeKernel{fail: fail}
	r, _ := newTestResolver(t, newFakeRegistry(), k, nil)
	vtep := netip.MustParseAddr("192.0.2.3")
	res := &resolution{action: "test", ops: []progOp{
		{kind: opDelFDB, mac: macN(1), vtep: vtep},
		{kind: opSetNeigh, ifindex: testVxlan, ip: netip.MustParseAddr("198.51.100.2"), mac: macN(2)},
		{kind: opSetFDB, mac: macN(2), vtep: vtep},
		{kind: opSetNeigh, ifindex: testVxlan, ip: netip.MustParseAddr("198.51.100.3"), mac: macN(2)},
		{kind: opDelNeigh, ifindex: testVxlan, ip: netip.MustParseAddr("198.51.100.1"), mac: macN(1)},
	}}
	r.prog.apply([]*resolution{res})
	var got []string
	for _, op := range res.ops {
		got = append(got, fmt.Sprintf("%v %v: %v", op.kind, op.ip, op.err))
	}
	want := []string{ // the ops as the producer gave them, each with its place in the batch
		"del-fdb invalid IP: request 4",
		"set-neigh 198.51.100.2: request 2",
		"set-fdb invalid IP: request 1",
		"set-neigh 198.51.100.3: request 3",
		"del-neigh 198.51.100.1: request 0",
	}
	if !slices.Equal(got, want) {
		t.Errorf("results\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
