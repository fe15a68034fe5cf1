package main

import (
	"testing"
	"time"
)

// cacheCounts returns the daemon's store lookups answered from memory and
// from a file, from its metrics m.
func cacheCounts(t *testing.T, m string) (memory, file float64) {
	t.Helper()
	memory = metricValue(m, `overlayd_store_cache_lookups_total{answer="memory"}`)
	file = metricValue(m, `overlayd_store_cache_lookups_total{answer="file"}`)
	if memory < 0 || file < 0 {
		t.Fatalf("metrics lack overlayd_store_cache_lookups_total:\n%s", grepLines(m, "overlayd_store_cache"))
	}
	return memory, file
}

// TestStoreCacheAnswersMisses: `overlayd run` on the directory store keeps
// the records in memory, coherent with the files (dirstore's cache, on
// from its start): the misses of first pings between containers attached
// before the daemons started are answered from memory, with no file read;
// and a container attached while the daemons run — its records written
// after the daemons read the store, which the cache learns of by inotify —
// is still answered on its first ping.
func TestStoreCacheAnswersMisses(t *testing.T) {
	nodes := newDirLab(t)
	const pairs = 4
	for i := range pairs {
		contactPairAt(i).attach(nodes)
	}
	const addr = "127.0.0.1:9478"
	for _, n := range nodes {
		n.startDaemon("--metrics", addr)
	}
	for _, n := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for metricValue(n.scrape(addr), "overlayd_store_cache_on") != 1 {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the store cache is not on 10 s after the daemon started:\n%s", n.name, grepLines(n.scrape(addr), "overlayd_store_cache"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	mem0, file0 := cacheCounts(t, nodes[0].scrape(addr))
	for i := range pairs {
		p := contactPairAt(i)
		if _, err := pingRTT(nodes[0], p.a, p.b.ip, "1"); err != nil {
			t.Fatalf("first ping %s -> %s not answered on its first try: %v", p.a.name, p.b.name, err)
		}
	}
	mem, file := cacheCounts(t, nodes[0].scrape(addr))
	t.Logf("node 1: store lookups for %d first pings: %v from memory, %v from a file", pairs, mem-mem0, file-file0)
	// Each first ping raises an L3 miss for its peer's IP on node 1 (MAC,
	// then VTEP) and one on node 2 for the way back: node 1 looks up at
	// least one MAC and one VTEP per pair, all listed when the daemon
	// started.
	if mem-mem0 < 2*pairs || file != file0 {
		t.Errorf("node 1: %v store lookups from memory, %v from a file for %d first pings; want at least %d from memory, none from a file",
			mem-mem0, file-file0, pairs, 2*pairs)
	}
	late := contactPairAt(pairs)
	late.attach(nodes)
	if _, err := pingRTT(nodes[0], late.a, late.b.ip, "1"); err != nil {
		t.Fatalf("first ping %s -> %s (attached while the daemons run) not answered on its first try: %v", late.a.name, late.b.name, err)
	}
}
