//go:build !noetcd

package main

import (
	"strings"
	"testing"
)

// testStores are the stores the tests that run on every store use: both in
// the full build.
var testStores = []string{"dir", "etcd"}

// newEtcdAllocateLab returns two nodes on one etcd, and the etcd keys of
// their overlay (without the stopped daemons' nodes/ keys, kept until their
// lease expires).
func newEtcdAllocateLab(t *testing.T) (n1, n2 *simNode, keys func() []string) {
	lab := newEtcdLab(t, 2, "")
	return lab.nodes[0], lab.nodes[1], func() []string {
		var out []string
		for k := range lab.keys(t) {
			if !strings.HasPrefix(k, "nodes/") {
				out = append(out, k)
			}
		}
		return out
	}
}

// newEtcdPair returns two nodes on one etcd, each with its overlay created.
func newEtcdPair(tb testing.TB) []*simNode { return newEtcdLabWith(tb, 2, labOptions{}).nodes }
