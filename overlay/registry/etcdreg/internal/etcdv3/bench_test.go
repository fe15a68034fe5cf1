package etcdv3

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/overlaynet/overlaynet/internal/etcdtest"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// BenchmarkList: a listing of 200,000 keys (a 100,000-endpoint overlay's
// arp/ and fdb/ keys) in pages of 4,096, as etcdreg lists a whole overlay,
// by this client and by etcd's clientv3 (gRPC) beside it, from the same
// etcd; then by this client in pages of 1,024 and of 16,384 (page=N):
// etcd visits every key left in the range for each page, so the smaller
// the pages, the longer etcd takes (etcdreg's start-up reads its listing
// in pages of 4,096 and 16,384). One op is one whole listing.
func BenchmarkList(b *testing.B) {
	const n, page = 200_000, 4096
	s := etcdtest.Start(b, etcdtest.Options{Args: []string{"--quota-backend-bytes", "8589934592"}})
	ctx := context.Background()
	c, err := New(ctx, Config{Endpoints: []string{s.Endpoint()}})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for i := 0; i < n; i += 100 {
		ops := make([]Op, 0, 100)
		for j := i; j < i+100; j++ {
			ops = append(ops, OpPut(fmt.Sprintf("/b/vni/42/arp/10.%d.%d.%d", j>>16, j>>8&255, j&255), "02:42:0a:00:00:01"))
		}
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			b.Fatal(err)
		}
	}
	cv3, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	defer cv3.Close()
	end := GetPrefixRangeEnd("/b/")
	// list reads every key through page, which returns a page's keys, the
	// last one and whether more follow.
	list := func(b *testing.B, page func(from string) (int, string, bool, error)) {
		b.ReportAllocs()
		for b.Loop() {
			from, keys := "/b/", 0
			for {
				k, last, more, err := page(from)
				if err != nil {
					b.Fatal(err)
				}
				keys += k
				if !more {
					break
				}
				from = last + "\x00"
			}
			if keys != n {
				b.Fatalf("%d keys", keys)
			}
		}
	}
	ours := func(page int64) func(from string) (int, string, bool, error) {
		return func(from string) (int, string, bool, error) {
			r, err := c.Get(ctx, from, WithRange(end), WithLimit(page))
			if err != nil {
				return 0, "", false, err
			}
			return len(r.Kvs), string(r.Kvs[len(r.Kvs)-1].Key), r.More, nil
		}
	}
	b.Run("etcdv3", func(b *testing.B) { list(b, ours(page)) })
	b.Run("clientv3", func(b *testing.B) {
		list(b, func(from string) (int, string, bool, error) {
			r, err := cv3.Get(ctx, from, clientv3.WithRange(end), clientv3.WithLimit(page))
			if err != nil {
				return 0, "", false, err
			}
			return len(r.Kvs), string(r.Kvs[len(r.Kvs)-1].Key), r.More, nil
		})
	})
	for _, p := range []int64{1024, 16384} {
		b.Run(fmt.Sprintf("page=%d", p), func(b *testing.B) { list(b, ours(p)) })
	}
}
