package main

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestAttachAllocates runs `overlayd attach NAME` without --ip on two nodes
// sharing a store, on both stores: each node claims a block of its own and
// hands out its addresses in order, an explicit --ip is honoured if free
// and refused if another container has it, status shows the blocks and
// their use, and detach and reset leave no allocation, record or block.
func TestAttachAllocates(t *testing.T) {
	for _, store := range testStores {
		t.Run(store, func(t *testing.T) {
			var n1, n2 *simNode
			var keys func() []string
			if store == "etcd" {
				n1, n2, keys = newEtcdAllocateLab(t)
			} else {
				lab := newDirLab(t)
				n1, n2 = lab[0], lab[1]
				keys = func() []string { return dirStoreFiles(t, n1.store) }
			}
			out := n1.ok("attach", "pink")
			if !strings.Contains(out, "eth0 198.51.100.2/24") {
				t.Fatalf("first allocation on node 1: %s", out)
			}
			if out := n2.ok("attach", "sky"); !strings.Contains(out, "eth0 198.51.100.64/24") {
				t.Fatalf("first allocation on node 2: %s", out)
			}
			if out := n1.ok("attach", "lime"); !strings.Contains(out, "eth0 198.51.100.3/24") {
				t.Fatalf("second allocation on node 1: %s", out)
			}
			if out := n1.ok("attach", "teal", "--ip", "198.51.100.200/24"); !strings.Contains(out, "198.51.100.200/24") {
				t.Fatalf("explicit address: %s", out)
			}
			r := n1.run("attach", "rose", "--ip", "198.51.100.64")
			if r.code != 1 || !strings.Contains(r.stderr, "registry: conflict") {
				t.Fatalf("explicit address of node 2's container: exit %d: %s", r.code, r.stderr)
			}
			st := n1.ok("status")
			if !strings.Contains(st, "ADDRESS BLOCK") || !strings.Contains(st, "198.51.100.0/26  2     62") {
				t.Errorf("status lacks the block and its use:\n%s", st)
			}
			// The ping between the two allocated containers goes through
			// the overlay as soon as the daemons resolve it.
			d1, d2 := n1.startDaemon(), n2.startDaemon()
			if out, err := n1.in("pink", "ping", "-c", "1", "-W", "5", "198.51.100.64"); err != nil {
				t.Errorf("ping from pink to sky: %v\n%s", err, out)
			}
			d1.stop(t)
			d2.stop(t)
			n1.ok("detach", "lime")
			if out := n1.ok("attach", "lime2"); !strings.Contains(out, "198.51.100.3/24") {
				t.Errorf("after detach the address is handed out again: %s", out)
			}
			n2.ok("reset")
			n1.ok("reset")
			var left []string
			for _, k := range keys() {
				if k != "config" { // the overlay's network, kept for the other nodes
					left = append(left, k)
				}
			}
			if len(left) != 0 {
				t.Errorf("store after reset: %v", left)
			}
		})
	}
}

// newDirLab is two nodes (192.0.2.2, 192.0.2.3, joined by a veth) on one
// directory store, each with its overlay created.
func newDirLab(t testing.TB) []*simNode {
	t.Helper()
	store := "dir:" + t.TempDir()
	n1 := newSimNode(t, "d1", store)
	n2 := newSimNode(t, "d2", store)
	n1.ip("link", "add", "u0", "type", "veth", "peer", "name", "u0", "netns", n2.name)
	for i, n := range []*simNode{n1, n2} {
		addr := fmt.Sprintf("192.0.2.%d", i+2)
		n.ip("addr", "add", addr+"/24", "dev", "u0")
		n.ip("link", "set", "u0", "up")
		n.ok("create", "--local", addr)
	}
	return []*simNode{n1, n2}
}

// dirStoreFiles lists the files under a dir: store URL.
func dirStoreFiles(t *testing.T, store string) []string {
	t.Helper()
	root := strings.TrimPrefix(store, "dir:")
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out = append(out, strings.TrimPrefix(p, root+"/"))
		}
		return nil
	})
	return out
}
