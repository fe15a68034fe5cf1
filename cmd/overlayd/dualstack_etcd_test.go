//go:build !noetcd

package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
	"github.com/overlaynet/overlaynet/internal/nstest"
	"github.com/overlaynet/overlaynet/rtnl"
)

// TestDualStackEtcdHybrid: three nodes of a dual-stack overlay on etcd,
// daemons in hybrid mode (the default on etcd), two containers per node
// attached after the daemons started: every node programs, from the
// watch and before any packet, the remote containers' IPv4 and IPv6
// neighbour entries and their FDB entries, and every container's first
// ping and first ping -6 of every other one is answered; over an IPv4
// underlay and over an IPv6 one.
func TestDualStackEtcdHybrid(t *testing.T) {
	for _, u6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "ipv4 underlay", true: "ipv6 underlay"}[u6], func(t *testing.T) {
			nstest.RequireRoot(t)
			etcdtest.Require(t)
			ctl := underlaySwitch(t)
			srv := etcdtest.Start(t, etcdtest.Options{NetNS: filepath.Join(rtnl.DefaultNetNSDir, ctl), Host: "192.0.2.1"})
			l := newDualLab(t, u6, srv.URL("ovt", ""), ctl)
			for _, n := range l.nodes {
				d := n.startDaemon("--log-level", "debug", "--metrics", "127.0.0.1:9477")
				l.ds = append(l.ds, d)
			}
			var ctrs []dualCtr
			for i := range l.nodes {
				ctrs = append(ctrs, l.attach(i, "pink"), l.attach(i, "sky"))
			}
			start := time.Now()
			if !waitFor(10*time.Second, func() bool { return len(l.missingEntries(ctrs)) == 0 }) {
				l.logs()
				t.Fatalf("entries not programmed from the watch within 10 s: %v", l.missingEntries(ctrs))
			}
			t.Logf("every remote entry of both families programmed %v after the last attach", time.Since(start).Round(time.Millisecond))
			if failed, _ := l.pingPairs(ctrs, 1); len(failed) > 0 {
				l.logs()
				t.Fatalf("not answered on the first try: %v", failed)
			}
			// The four remote containers' eight neighbour entries, from
			// the watch.
			checkDualStackNode(t, l, u6, `overlayd_programmed_entries{table="neigh"} 8`)
		})
	}
}
