package registry

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCheckerBoundsLog: 5,000 rejections of distinct keys, each key over a
// kilobyte, in one interval (a minute, on the test's clock) log at most 10
// lines, each short, and every one
// is counted; the next interval sums up the ones not logged in one line; a
// key already logged in an interval is not logged again in it.
func TestCheckerBoundsLog(t *testing.T) {
	var buf bytes.Buffer
	c := NewChecker(testPolicy(), slog.New(slog.NewTextHandler(&buf, nil)), time.Minute)
	clock := time.Now()
	c.now = func() time.Time { return clock }
	long := strings.Repeat("K", 2000)
	for i := range 5000 {
		c.Reject(Rejected{Key: fmt.Sprintf("arp/junk-%d-%s", i, long), Reason: ReasonMalformed})
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != maxLinesPerInterval || buf.Len() > 4096 {
		t.Errorf("%d lines, %d bytes for 5000 rejections; want %d lines, under 4 KiB:\n%s", len(lines), buf.Len(), maxLinesPerInterval, buf.String())
	}
	if c.Rejections(ReasonMalformed) != 5000 {
		t.Errorf("counted %d, want 5000", c.Rejections(ReasonMalformed))
	}
	buf.Reset()
	c.Reject(Rejected{Key: "arp/junk-0-" + long, Reason: ReasonMalformed}) // logged already, same interval
	if buf.Len() != 0 {
		t.Errorf("a key logged again within its interval:\n%s", buf.String())
	}
	clock = clock.Add(time.Minute)
	c.Reject(Rejected{Key: "arp/junk-0-" + long, Reason: ReasonMalformed})
	out := buf.String()
	if !strings.Contains(out, "more records rejected than logged") || !strings.Contains(out, "rejections=4990") ||
		!strings.Contains(out, "by_reason.malformed=4990") || strings.Count(out, "\n") != 2 {
		t.Errorf("next interval:\n%s\nwant the summary of the 4990 not logged, then the key again", out)
	}
}

// TestCheckerAccept: Accept counts a rejected record under its reason and
// logs the half's key (arp/IP for the IP and MAC, fdb/MAC for the VTEP),
// never a value that is not in the key.
func TestCheckerAccept(t *testing.T) {
	var buf bytes.Buffer
	c := NewChecker(testPolicy(), slog.New(slog.NewTextHandler(&buf, nil)), time.Hour)
	honest := Record{IP: netip.MustParseAddr("198.51.100.5"), MAC: mustMAC("02:42:c6:33:64:05"), VTEP: netip.MustParseAddr("192.0.2.3")}
	if !c.Accept(honest) {
		t.Fatal("honest record rejected")
	}
	lo := honest
	lo.VTEP = netip.MustParseAddr("127.0.0.1")
	gw := honest
	gw.IP = netip.MustParseAddr("198.51.100.1")
	if c.Accept(lo) || c.Accept(gw) || c.AcceptNode(netip.MustParseAddr("224.0.0.1")) {
		t.Fatal("hostile record accepted")
	}
	out := buf.String()
	for _, want := range []string{"key=fdb/02:42:c6:33:64:05 reason=vtep_loopback", "key=arp/198.51.100.1 reason=ip_gateway", "key=nodes/224.0.0.1 reason=vtep_multicast"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "127.0.0.1") {
		t.Errorf("log holds the value:\n%s", out)
	}
	var m bytes.Buffer
	c.WriteMetrics(&m)
	for _, want := range []string{`overlayd_records_rejected_total{reason="vtep_loopback"} 1`, `overlayd_records_rejected_total{reason="ip_gateway"} 1`,
		`overlayd_records_rejected_total{reason="vtep_multicast"} 1`, `overlayd_records_rejected_total{reason="malformed"} 0`} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, m.String())
		}
	}
}

// listReg is a registry listing fixed records and rejections, and a change
// feed delivering fixed changes.
type listReg struct {
	Registry
	recs    []Record
	rej     []Rejected
	changes []Change
}

func (l listReg) ListRejected(context.Context) ([]Record, []Rejected, error) {
	return slices.Clone(l.recs), l.rej, nil
}

func (l listReg) Watch(ctx context.Context) (<-chan Change, error) {
	ch := make(chan Change, len(l.changes))
	for _, c := range l.changes {
		ch <- c
	}
	close(ch)
	return ch, nil
}

// TestCheckerListAndFeed: a listing and a feed pass on exactly the records
// the policy accepts; the store's rejections and the refused records are
// counted, and the Delete of a refused record is not passed on.
func TestCheckerListAndFeed(t *testing.T) {
	c := NewChecker(testPolicy(), nil, 0)
	honest := Record{IP: netip.MustParseAddr("198.51.100.5"), MAC: mustMAC("02:42:c6:33:64:05"), VTEP: netip.MustParseAddr("192.0.2.3")}
	bcast := honest
	bcast.IP, bcast.VTEP = netip.MustParseAddr("198.51.100.6"), netip.MustParseAddr("255.255.255.255")
	junk := Rejected{Key: "arp/junk", Reason: ReasonMalformed}
	reg := listReg{recs: []Record{honest, bcast}, rej: []Rejected{junk},
		changes: []Change{{Kind: ChangePut, Record: honest}, {Kind: ChangePut, Record: bcast}, {Kind: ChangeRejected, Rejected: junk},
			{Kind: ChangeSynced}, {Kind: ChangeDelete, Record: bcast}, {Kind: ChangeDelete, Record: honest}}}
	recs, err := c.List(t.Context(), reg)
	if err != nil || !slices.Equal(recs, []Record{honest}) {
		t.Errorf("List = %v, %v; want only the honest record", recs, err)
	}
	ch, err := c.Feed(reg).Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for ch := range ch {
		got = append(got, ch.Kind.String()+" "+ch.Record.IP.String())
	}
	if want := []string{"put 198.51.100.5", "synced invalid IP", "delete 198.51.100.5"}; !slices.Equal(got, want) {
		t.Errorf("feed delivered %q, want %q", got, want)
	}
	if c.Rejections(ReasonMalformed) != 2 || c.Rejections(ReasonVTEPBroadcast) != 2 {
		t.Errorf("counted malformed %d, vtep_broadcast %d; want 2 each (list and feed)", c.Rejections(ReasonMalformed), c.Rejections(ReasonVTEPBroadcast))
	}
}
