package stores

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
	"github.com/overlaynet/overlaynet/overlay/registry/dirstore"
	"github.com/overlaynet/overlaynet/overlay/registry/etcdreg"
	"github.com/overlaynet/overlaynet/overlay/registry/kubenode"
	"github.com/overlaynet/overlaynet/overlay/registry/kubereg"
)

// TestSchemes: the shipped schemes, each opening its store through
// registry.Open.
func TestSchemes(t *testing.T) {
	s := Schemes()
	var names []string
	for k := range s {
		names = append(names, k)
	}
	slices.Sort(names)
	if want := []string{"dir", "etcd", "etcds", "kube"}; !slices.Equal(names, want) {
		t.Errorf("schemes %v, want %v", names, want)
	}
	dir := t.TempDir()
	r, err := registry.Open(t.Context(), "dir:"+dir, registry.Options{Schemes: s})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if ds, ok := r.(*dirstore.Store); !ok || ds.Root() != dir {
		t.Errorf("dir: opened %T %v", r, r)
	}
	for _, url := range []string{"etcd://h:1/p?vni=x", "etcds://alice:s3cret@h:1/p?nosuch=1"} {
		_, err := registry.Open(t.Context(), url, registry.Options{Schemes: s})
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want an error without the password", url, err)
		}
		if !errors.Is(err, registry.ErrBadURL) && !errors.Is(err, ErrNoEtcd) {
			t.Errorf("%s: %v, want ErrBadURL (or ErrNoEtcd in a noetcd build)", url, err)
		}
	}
}

// storeTypes are the stores of the capability table in package registry's
// documentation, by column.
var storeTypes = map[string]reflect.Type{
	"dir":      reflect.TypeFor[*dirstore.Store](),
	"etcd":     reflect.TypeFor[*etcdreg.Registry](),
	"kube":     reflect.TypeFor[*kubereg.Registry](),
	"kubenode": reflect.TypeFor[*kubenode.Store](),
}

// TestCapabilityTable: package registry's documentation lists every
// optional interface of capabilities.go, and says rightly which store has
// it ("yes" or "-" per store column).
func TestCapabilityTable(t *testing.T) {
	ifaces := capabilityInterfaces(t)
	doc, err := os.ReadFile("../doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var cols []string
	listed := map[string]bool{}
	for line := range strings.SplitSeq(string(doc), "\n") {
		f := strings.Fields(strings.TrimPrefix(line, "//"))
		if !strings.HasPrefix(line, "//\t") || len(f) < 3 {
			continue
		}
		if f[0] == "capability" {
			cols = f[len(f)-len(storeTypes):]
			continue
		}
		iface, ok := ifaces[f[0]]
		if !ok || cols == nil {
			t.Errorf("table row %q names no capability of capabilities.go", line)
			continue
		}
		listed[f[0]] = true
		for i, col := range cols {
			st, ok := storeTypes[col]
			if !ok {
				t.Fatalf("table column %q is no store of this test", col)
			}
			mark := f[len(f)-len(cols)+i]
			if has := st.Implements(iface); has != (mark == "yes") || (mark != "yes" && mark != "-") {
				t.Errorf("%s: %s column says %q; %v implements it: %v", f[0], col, mark, st, has)
			}
		}
	}
	for name := range ifaces {
		if !listed[name] {
			t.Errorf("capability %s is not in package registry's table", name)
		}
	}
	if len(cols) != len(storeTypes) {
		t.Errorf("table columns %v, want one per store of %v", cols, storeTypes)
	}
}

// capabilityInterfaces returns the interfaces capabilities.go declares, by
// name, as types of package registry.
func capabilityInterfaces(t *testing.T) map[string]reflect.Type {
	known := map[string]reflect.Type{
		"ChangeFeed":     reflect.TypeFor[registry.ChangeFeed](),
		"NetworkStore":   reflect.TypeFor[registry.NetworkStore](),
		"BlockStore":     reflect.TypeFor[registry.BlockStore](),
		"KeyLister":      reflect.TypeFor[registry.KeyLister](),
		"NodeLister":     reflect.TypeFor[registry.NodeLister](),
		"NodeAdvertiser": reflect.TypeFor[registry.NodeAdvertiser](),
		"VTEPLister":     reflect.TypeFor[registry.VTEPLister](),
		"Stamper":        reflect.TypeFor[registry.Stamper](),
		"Notifier":       reflect.TypeFor[registry.Notifier](),
		"Leaser":         reflect.TypeFor[registry.Leaser](),
		"RejectLister":   reflect.TypeFor[registry.RejectLister](),
		"TempSweeper":    reflect.TypeFor[registry.TempSweeper](),
		"AssignedBlocks": reflect.TypeFor[registry.AssignedBlocks](),
		"Readier":        reflect.TypeFor[registry.Readier](),
		"Announcer":      reflect.TypeFor[registry.Announcer](),
		"Exporter":       reflect.TypeFor[registry.Exporter](),
		"MemberStore":    reflect.TypeFor[registry.MemberStore](),
		"MemberWatcher":  reflect.TypeFor[registry.MemberWatcher](),
	}
	f, err := parser.ParseFile(token.NewFileSet(), "../capabilities.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]reflect.Type{}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.TYPE {
			continue
		}
		for _, s := range g.Specs {
			ts := s.(*ast.TypeSpec)
			if _, ok := ts.Type.(*ast.InterfaceType); !ok {
				continue
			}
			if known[ts.Name.Name] == nil {
				t.Fatalf("capabilities.go declares %s: add it to this test", ts.Name.Name)
			}
			out[ts.Name.Name] = known[ts.Name.Name]
		}
	}
	if len(out) != len(known) {
		t.Errorf("capabilities.go declares %d interfaces, this test knows %d", len(out), len(known))
	}
	return out
}
