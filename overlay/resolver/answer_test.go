package resolver

import (
	"errors"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/rtnl"
)

// answerLog records the Answerer's calls.
type answerLog struct {
	mu         sync.Mutex
	miss, held []netip.Addr
}

func (a *answerLog) Answer(ip netip.Addr, since time.Time) {
	if since.IsZero() || time.Since(since) > time.Minute {
		panic("Answer without the miss's time")
	}
	a.mu.Lock()
	a.miss = append(a.miss, ip)
	a.mu.Unlock()
}

func (a *answerLog) AnswerHeld(ip netip.Addr) {
	a.mu.Lock()
	a.held = append(a.held, ip)
	a.mu.Unlock()
}

func (a *answerLog) calls() (miss, held []netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.miss), slices.Clone(a.held)
}

// TestResolverAnswersRequests: the Answerer hears of each neighbour entry
// the resolver programmed, once it is in: Answer for a miss's, AnswerHeld
// for the feed's. Nothing for an address the registry does not hold, a
// local container's, an L2 miss, or a neighbour entry the kernel refused.
func TestResolverAnswersRequests(t *testing.T) {
	reg := newFakeRegistry()
	reg.add("198.51.100.3", macN(3), "192.0.2.3")
	reg.add("198.51.100.5", macN(5), "192.0.2.2") // a local container (LocalVTEP)
	reg.add("198.51.100.6", macN(6), "192.0.2.6")
	feed := make(chanFeed, 4)
	k := &fakeKernel{}
	ans := &answerLog{}
	r, _ := newTestResolver(t, reg, k, func(c *testConfig) {
		c.Feed, c.Mode, c.Answerer = feed, ModeHybrid, ans
	})
	feed <- registry.Change{Kind: registry.ChangePut, Record: registry.Record{IP: netip.MustParseAddr("198.51.100.4"), MAC: macN(4), VTEP: netip.MustParseAddr("192.0.2.4")}}
	feed <- registry.Change{Kind: registry.ChangeSynced}
	runResolver(t, r)
	eventually(t, "the feed's entry", func() bool { _, held := ans.calls(); return len(held) == 1 })

	for _, ip := range []string{"198.51.100.3", "198.51.100.9", "198.51.100.5"} {
		r.HandleMiss(l3(ip))
	}
	r.HandleMiss(&rtnl.Miss{Kind: rtnl.MissL2, Ifindex: testVxlan, MAC: ethaddr.MAC(macN(6)), HasMAC: true})
	eventually(t, "the misses", func() bool {
		s := r.Metrics().Snapshot()
		return s.Resolutions["l3miss"] == 1 && s.Resolutions["l2miss"] == 1 && s.Unresolved["not_found"] == 1 && s.Unresolved["local"] == 1
	})
	k.mu.Lock()
	k.fail = map[int]error{1: errors.New("refused")} // the neighbour request of the next batch (after its FDB request)
	k.mu.Unlock()
	r.HandleMiss(l3("198.51.100.6"))
	eventually(t, "the refused entry", func() bool { return r.Metrics().Snapshot().Errors >= 1 })

	miss, held := ans.calls()
	if want := []netip.Addr{netip.MustParseAddr("198.51.100.3")}; !slices.Equal(miss, want) {
		t.Errorf("Answer for %v, want %v only", miss, want)
	}
	if want := []netip.Addr{netip.MustParseAddr("198.51.100.4")}; !slices.Equal(held, want) {
		t.Errorf("AnswerHeld for %v, want %v only", held, want)
	}
}
