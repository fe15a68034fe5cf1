package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
)

// memRegistry is a read-only in-memory copy of a registry: the lookup cost
// of libnetwork's own peer database (a map in the daemon), so that a run on
// it measures the resolvers and the kernel rather than the registry's
// storage.
type memRegistry struct {
	macs  map[netip.Addr]ethaddr.MAC
	vteps map[ethaddr.MAC]netip.Addr
}

var _ registry.Registry = (*memRegistry)(nil)

var errReadOnly = errors.New("bench: memRegistry is read-only")

// newMemRegistry copies every complete record of from.
func newMemRegistry(from registry.Registry) (*memRegistry, error) {
	recs, err := from.List(context.Background())
	if err != nil {
		return nil, err
	}
	m := &memRegistry{macs: make(map[netip.Addr]ethaddr.MAC, len(recs)), vteps: make(map[ethaddr.MAC]netip.Addr, len(recs))}
	for _, r := range recs {
		m.macs[r.IP] = r.MAC
		if r.VTEP.IsValid() {
			m.vteps[r.MAC] = r.VTEP
		}
	}
	return m, nil
}

func (m *memRegistry) LookupMAC(_ context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	mac, ok := m.macs[ip]
	if !ok {
		return mac, fmt.Errorf("IP %s: %w", ip, registry.ErrNotFound)
	}
	return mac, nil
}

func (m *memRegistry) LookupVTEP(_ context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	v, ok := m.vteps[mac]
	if !ok {
		return v, fmt.Errorf("MAC %s: %w", mac, registry.ErrNotFound)
	}
	return v, nil
}

func (m *memRegistry) Register(context.Context, registry.Record) error   { return errReadOnly }
func (m *memRegistry) Unregister(context.Context, registry.Record) error { return errReadOnly }
func (m *memRegistry) Close() error                                      { return nil }

func (m *memRegistry) List(context.Context) ([]registry.Record, error) {
	out := make([]registry.Record, 0, len(m.macs))
	for ip, mac := range m.macs {
		out = append(out, registry.Record{IP: ip, MAC: mac, VTEP: m.vteps[mac]})
	}
	return out, nil
}

// BenchmarkRegistryLookup measures what an L3 miss costs in registry
// lookups alone (IP → MAC, then MAC → VTEP), cycling through the resolveN
// distinct records that BenchmarkResolve uses: the part of a resolution both
// implementations pay the same, which bounds their ratio when it dominates.
// registry=dir is the directory store as the daemon opens it (its cache
// on), dirfiles the same directory read file by file (the cache off: a
// one-shot command's store), mem an in-memory map.
func BenchmarkRegistryLookup(b *testing.B) {
	ctx := context.Background()
	regs := resolveRegistries(b)
	files, err := dirstore.New(regs[0].dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, reg := range append(regs, benchRegistry{"dirfiles", files, regs[0].dir}) {
		b.Run("registry="+reg.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				mac, err := reg.reg.LookupMAC(ctx, resolveIP(i))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := reg.reg.LookupVTEP(ctx, mac); err != nil {
					b.Fatal(err)
				}
				i = (i + 1) % resolveN
			}
		})
	}
}
