package etcdreg

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/overlaynet/overlaynet/overlay/ipam"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg/internal/etcdv3"
)

// blockKey is B/blocks/<addr>-<bits>; its value is the claiming node's VTEP.
// Blocks are written without a lease: a node's blocks stay claimed while
// its daemon restarts or is down, until the node is reset.
func (r *Registry) blockKey(b netip.Prefix) string { return r.base + "blocks/" + ipam.BlockName(b) }

// ClaimBlock records owner as the holder of block in one transaction that
// writes only if the key does not exist, else reads it: of two nodes
// claiming one block at once exactly one wins. It returns the holder.
func (r *Registry) ClaimBlock(ctx context.Context, b netip.Prefix, owner string) (string, error) {
	if b != b.Masked() || !b.IsValid() {
		return "", fmt.Errorf("etcdreg: block %s is not a network prefix", b)
	}
	if owner == "" || strings.ContainsAny(owner, "\n/") {
		return "", fmt.Errorf("etcdreg: block owner %q is empty or not one line", owner)
	}
	octx, done := r.opCtx(ctx)
	defer done()
	k := r.blockKey(b)
	resp, err := r.cli.Txn(octx).If(etcdv3.Compare(etcdv3.CreateRevision(k), "=", 0)).
		Then(etcdv3.OpPut(k, owner)).Else(etcdv3.OpGet(k)).Commit()
	if err != nil {
		return "", r.wrap("claim block "+b.String(), err)
	}
	if resp.Succeeded {
		return owner, nil
	}
	kv := firstKV(resp.Responses[0])
	if kv == nil {
		// Released between the compare and the read: claim again.
		return r.ClaimBlock(ctx, b, owner)
	}
	return string(kv.Value), nil
}

// ReleaseBlock deletes block's key if owner holds it.
func (r *Registry) ReleaseBlock(ctx context.Context, b netip.Prefix, owner string) error {
	octx, done := r.opCtx(ctx)
	defer done()
	k := r.blockKey(b)
	_, err := r.cli.Txn(octx).If(etcdv3.Compare(etcdv3.Value(k), "=", owner)).
		Then(etcdv3.OpDelete(k)).Commit()
	if err != nil {
		return r.wrap("release block "+b.String(), err)
	}
	return nil
}

// Blocks returns every claimed block with its holder. Malformed keys are
// reported in the error, which comes with the blocks that could be read.
func (r *Registry) Blocks(ctx context.Context) (map[netip.Prefix]string, error) {
	octx, done := r.opCtx(ctx)
	defer done()
	prefix := r.base + "blocks/"
	resp, err := r.cli.Get(octx, prefix, etcdv3.WithPrefix())
	if err != nil {
		return nil, r.wrap("list blocks", err)
	}
	out := make(map[netip.Prefix]string, len(resp.Kvs))
	var bad []string
	for _, kv := range resp.Kvs {
		b, err := ipam.ParseBlockName(strings.TrimPrefix(string(kv.Key), prefix))
		if err != nil {
			bad = append(bad, string(kv.Key))
			continue
		}
		out[b] = string(kv.Value)
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("etcdreg: keys that do not name a block: %s", strings.Join(bad, ", "))
	}
	return out, nil
}
