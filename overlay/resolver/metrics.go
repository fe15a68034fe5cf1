package resolver

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/overlaynet/overlaynet/internal/promtext"
	"github.com/overlaynet/overlaynet/rtnl"
)

// Metrics are the resolver's counters, exported in the Prometheus text
// exposition format (version 0.0.4) by WritePrometheus and ServeHTTP, with
// no dependency outside the standard library. All methods are safe for
// concurrent use; the zero value is ready.
type Metrics struct {
	misses          [4]atomic.Uint64 // by rtnl.MissKind
	ignored         [ignoreReasons]atomic.Uint64
	coalesced       atomic.Uint64
	viewAnswers     atomic.Uint64 // misses answered from the feed's view
	negativeHits    atomic.Uint64
	dropped         [dropReasons]atomic.Uint64
	resolutions     [4]atomic.Uint64 // by rtnl.MissKind
	familyMisses    [2]atomic.Uint64 // L3 misses and app_solicits, by missKey.family
	familyResolved  [2]atomic.Uint64 // their resolutions, by missKey.family
	unresolved      [unresolvedReasons]atomic.Uint64
	badRecords      atomic.Uint64
	overruns        atomic.Uint64
	batches         atomic.Uint64
	batchMessages   atomic.Uint64
	programErrors   atomic.Uint64
	reconciles      atomic.Uint64
	reconcileErrors atomic.Uint64
	reconcileFixes  [3]atomic.Uint64 // by reconcileAction
	programmedNeigh atomic.Int64
	programmedFDB   atomic.Int64
	lookup          histogram // registry lookup latency
	missToEntry     histogram // first miss to entry programmed
	batch           histogram // one ExecuteBatch: the kernel applying a batch

	mu    sync.Mutex
	extra []func(w io.Writer)
}

// ignoreReason says why a miss was not looked up.
type ignoreReason uint8

const (
	ignoreOtherDevice   ignoreReason = iota // not this overlay's vxlan (or bridge)
	ignoreOutsideSubnet                     // outside the overlay subnet (or its IPv6 prefix)
	ignoreNoise                             // DAD (unspecified), loopback or zero addresses and MACs
	ignoreLinkLocal                         // link-local addresses: IPv6 fe80::/10 (a DAD probe, a link-local neighbour), IPv4 169.254/16
	ignoreMulticast                         // multicast addresses (IPv6 ff00::/8, IPv4 224/4) and MACs
	ignoreReasons
)

var ignoreReasonNames = [ignoreReasons]string{"other_device", "outside_subnet", "noise", "link_local", "multicast"}

// dropReason says why a miss the resolver accepted was not looked up. A
// dropped miss is raised again by the kernel on the sender's retry.
type dropReason uint8

const (
	// dropScanBudget: the key (an IPv4 address or a MAC) is not one the
	// registry listed, and the budget of lookups for such keys (LookupRate,
	// LookupBurst) is spent: a scan.
	dropScanBudget dropReason = iota
	// dropScanBudget6: the same for an IPv6 address, whose budget is its
	// own (dropScanBudget + missKey.family).
	dropScanBudget6
	// dropStopped: the resolver was not running and its queue was full.
	dropStopped
	dropReasons
)

var dropReasonNames = [dropReasons]string{"scan_budget", "scan_budget_ipv6", "stopped"}

// unresolvedReason says why a lookup did not lead to an entry.
type unresolvedReason uint8

const (
	unresolvedNotFound unresolvedReason = iota
	unresolvedBadRecord
	unresolvedRegistryError
	unresolvedLocal // the record points at this node's own VTEP
	unresolvedReasons
)

var unresolvedReasonNames = [unresolvedReasons]string{"not_found", "bad_record", "registry_error", "local"}

// reconcileAction is what a reconcile pass did to an entry.
type reconcileAction uint8

const (
	reconcileUpdated reconcileAction = iota
	reconcileRemoved
	reconcileAdopted
)

var reconcileActionNames = [3]string{"updated", "removed", "adopted"}

// histogram is a fixed-bucket latency histogram (seconds).
type histogram struct {
	counts [len(latencyBuckets) + 1]atomic.Uint64
	sumNS  atomic.Uint64
}

// latencyBuckets are upper bounds in seconds, 50 µs .. 2.5 s.
var latencyBuckets = [...]float64{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && s > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	if d > 0 {
		h.sumNS.Add(uint64(d))
	}
}

// AddCollector registers fn to append more samples (already formatted) to
// every exposition, e.g. a monitor's counters (see MonitorCollector).
func (m *Metrics) AddCollector(fn func(w io.Writer)) {
	m.mu.Lock()
	m.extra = append(m.extra, fn)
	m.mu.Unlock()
}

// MonitorCollector returns a collector exporting a miss monitor's counters.
func MonitorCollector(stats func() rtnl.MonitorStats) func(w io.Writer) {
	return func(w io.Writer) {
		s := stats()
		promtext.Counter(w, "overlayd_monitor_messages_total", "Netlink messages read by the miss monitor.", s.Messages)
		promtext.Counter(w, "overlayd_monitor_decode_errors_total", "Messages the miss monitor could not decode.", s.DecodeErrors)
		promtext.Counter(w, "overlayd_monitor_overruns_total", "Receive buffer overflows (ENOBUFS) seen by the miss monitor.", s.Overruns)
		promtext.Counter(w, "overlayd_monitor_syscalls_total", "recvmmsg calls that returned data.", s.Syscalls)
	}
}

// ServeHTTP writes the metrics in the Prometheus text format.
func (m *Metrics) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m.WritePrometheus(w)
}

// WritePrometheus writes every metric in the Prometheus text format.
func (m *Metrics) WritePrometheus(out io.Writer) error {
	w := bufio.NewWriter(out)
	kinds := []rtnl.MissKind{rtnl.MissL3, rtnl.MissL2, rtnl.MissAppSolicit}
	promtext.Family(w, "overlayd_misses_total", "counter", "Miss notifications received, by kind.",
		"kind", len(kinds), func(i int) (string, uint64) { return kinds[i].String(), m.misses[kinds[i]].Load() })
	promtext.Family(w, "overlayd_misses_ignored_total", "counter", "Misses not looked up because they are not this overlay's, by reason.",
		"reason", len(ignoreReasonNames), func(i int) (string, uint64) { return ignoreReasonNames[i], m.ignored[i].Load() })
	promtext.Counter(w, "overlayd_misses_coalesced_total", "Misses joined to a lookup already in flight for the same key.", m.coalesced.Load())
	promtext.Counter(w, "overlayd_misses_answered_from_feed_total", "Misses answered from the change feed's view of the registry, with no registry lookup.", m.viewAnswers.Load())
	promtext.Counter(w, "overlayd_negative_cache_hits_total", "Misses answered by the negative cache (key recently unknown).", m.negativeHits.Load())
	promtext.Family(w, "overlayd_misses_dropped_total", "counter", "Misses not looked up, by reason: scan_budget (an IPv4 address or MAC the registry did not list, beyond the lookup budget), scan_budget_ipv6 (the same for an IPv6 address, whose budget is its own), stopped (the resolver was not running). The kernel raises them again on the sender's retry.",
		"reason", len(dropReasonNames), func(i int) (string, uint64) { return dropReasonNames[i], m.dropped[i].Load() })
	promtext.Family(w, "overlayd_resolutions_total", "counter", "Misses resolved and programmed, by kind.",
		"kind", len(kinds), func(i int) (string, uint64) { return kinds[i].String(), m.resolutions[kinds[i]].Load() })
	families := []string{"ipv4", "ipv6"}
	promtext.Family(w, "overlayd_address_misses_total", "counter", "L3 misses and app_solicit requests of this overlay (link-local, multicast and outside addresses not counted), by the address's family.",
		"family", len(families), func(i int) (string, uint64) { return families[i], m.familyMisses[i].Load() })
	promtext.Family(w, "overlayd_address_resolutions_total", "counter", "L3 misses and app_solicit requests resolved and programmed, by the address's family.",
		"family", len(families), func(i int) (string, uint64) { return families[i], m.familyResolved[i].Load() })
	promtext.Family(w, "overlayd_unresolved_total", "counter", "Lookups that programmed nothing, by reason.",
		"reason", len(unresolvedReasonNames), func(i int) (string, uint64) { return unresolvedReasonNames[i], m.unresolved[i].Load() })
	promtext.Counter(w, "overlayd_overruns_total", "Monitor overruns (ENOBUFS) the resolver resynced after.", m.overruns.Load())
	promtext.Counter(w, "overlayd_program_batches_total", "Batches of kernel requests sent.", m.batches.Load())
	promtext.Counter(w, "overlayd_program_messages_total", "Kernel requests sent in batches.", m.batchMessages.Load())
	promtext.Counter(w, "overlayd_program_errors_total", "Kernel requests that failed.", m.programErrors.Load())
	promtext.Counter(w, "overlayd_reconcile_runs_total", "Reconcile passes completed (successful or not).", m.reconciles.Load())
	promtext.Counter(w, "overlayd_reconcile_errors_total", "Reconcile passes that failed.", m.reconcileErrors.Load())
	promtext.Family(w, "overlayd_reconcile_changes_total", "counter", "Entries changed by reconcile passes, by action.",
		"action", len(reconcileActionNames), func(i int) (string, uint64) { return reconcileActionNames[i], m.reconcileFixes[i].Load() })
	tables := [...]*atomic.Int64{&m.programmedNeigh, &m.programmedFDB}
	tableNames := [...]string{"neigh", "fdb"}
	promtext.Family(w, "overlayd_programmed_entries", "gauge", "Kernel entries this daemon programmed and tracks, by table.",
		"table", len(tables), func(i int) (string, uint64) { return tableNames[i], uint64(tables[i].Load()) })
	m.lookup.write(w, "overlayd_registry_lookup_duration_seconds", "Registry lookup latency.")
	m.missToEntry.write(w, "overlayd_miss_to_entry_seconds", "Time from a miss to its entries programmed in the kernel.")
	m.batch.write(w, "overlayd_program_batch_duration_seconds", "Time the kernel took to apply one batch of requests (one programming socket, serialized by RTNL).")
	m.mu.Lock()
	extra := m.extra
	m.mu.Unlock()
	for _, fn := range extra {
		fn(w)
	}
	return w.Flush()
}

func (h *histogram) write(w io.Writer, name, help string) {
	promtext.Header(w, name, "histogram", help)
	var cum uint64
	for i, le := range latencyBuckets {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", name, strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	cum += h.counts[len(latencyBuckets)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, cum)
	fmt.Fprintf(w, "%s_sum %s\n", name, strconv.FormatFloat(float64(h.sumNS.Load())/1e9, 'g', -1, 64))
	fmt.Fprintf(w, "%s_count %d\n", name, cum)
}

// MetricsSnapshot is a copy of the main counters, for tests and status
// output.
type MetricsSnapshot struct {
	Misses, Resolutions      map[string]uint64 // by miss kind
	FamilyMisses             [2]uint64         // L3 misses and app_solicits of this overlay: IPv4, IPv6
	FamilyResolutions        [2]uint64         // their resolutions: IPv4, IPv6
	Ignored, Unresolved      map[string]uint64 // by reason
	Coalesced, NegativeHits  uint64
	FromFeed                 uint64            // misses answered from the feed's view
	Dropped                  map[string]uint64 // by reason
	Overruns, Batches        uint64
	BatchMessages, Errors    uint64
	Reconciles               uint64
	ReconcileChanges         map[string]uint64 // by action
	ProgrammedNeigh          int64
	ProgrammedFDB            int64
	Lookups, LookupSumMicros uint64
}

// Snapshot copies the counters.
func (m *Metrics) Snapshot() MetricsSnapshot {
	s := MetricsSnapshot{
		Misses: map[string]uint64{}, Resolutions: map[string]uint64{},
		Ignored: map[string]uint64{}, Unresolved: map[string]uint64{}, ReconcileChanges: map[string]uint64{},
		Coalesced: m.coalesced.Load(), NegativeHits: m.negativeHits.Load(), FromFeed: m.viewAnswers.Load(),
		Dropped:  map[string]uint64{},
		Overruns: m.overruns.Load(), Batches: m.batches.Load(),
		BatchMessages: m.batchMessages.Load(), Errors: m.programErrors.Load(),
		Reconciles:      m.reconciles.Load(),
		ProgrammedNeigh: m.programmedNeigh.Load(), ProgrammedFDB: m.programmedFDB.Load(),
		LookupSumMicros: uint64(math.Round(float64(m.lookup.sumNS.Load()) / 1e3)),
	}
	for _, k := range []rtnl.MissKind{rtnl.MissL3, rtnl.MissL2, rtnl.MissAppSolicit} {
		s.Misses[k.String()] = m.misses[k].Load()
		s.Resolutions[k.String()] = m.resolutions[k].Load()
	}
	for i, n := range ignoreReasonNames {
		s.Ignored[n] = m.ignored[i].Load()
	}
	for i := range m.familyMisses {
		s.FamilyMisses[i], s.FamilyResolutions[i] = m.familyMisses[i].Load(), m.familyResolved[i].Load()
	}
	for i, n := range unresolvedReasonNames {
		s.Unresolved[n] = m.unresolved[i].Load()
	}
	for i, n := range dropReasonNames {
		s.Dropped[n] = m.dropped[i].Load()
	}
	for i, n := range reconcileActionNames {
		s.ReconcileChanges[n] = m.reconcileFixes[i].Load()
	}
	for i := range m.lookup.counts {
		s.Lookups += m.lookup.counts[i].Load()
	}
	return s
}
