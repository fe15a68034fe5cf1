//go:build noetcd

package main

import "testing"

// testStores: the build without etcd has the directory store only.
var testStores = []string{"dir"}

func newEtcdAllocateLab(t *testing.T) (n1, n2 *simNode, keys func() []string) {
	t.Fatal("this build has no etcd store")
	return nil, nil, nil
}

func newEtcdPair(tb testing.TB) []*simNode {
	tb.Fatal("this build has no etcd store")
	return nil
}
