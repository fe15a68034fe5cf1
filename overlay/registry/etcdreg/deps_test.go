package etcdreg

import (
	"os/exec"
	"strings"
	"testing"
)

// TestEtcdClientIsOwn: overlayd and the CNI plugin, with any tags, link no
// package of etcd's client stack (gRPC, the protobuf runtime, zap,
// go.etcd.io): etcdreg speaks etcd through internal/etcdv3. Tests may still
// use clientv3 as an oracle.
func TestEtcdClientIsOwn(t *testing.T) {
	const mod = "github.com/overlaynet/overlaynet/"
	banned := []string{"go.etcd.io/", "google.golang.org/grpc", "google.golang.org/protobuf", "go.uber.org/zap"}
	for _, tags := range []string{"", "nokube", "noetcd"} {
		for _, pkg := range []string{"cmd/overlayd", "cmd/overlaynet", "overlay/registry/etcdreg"} {
			out, err := exec.Command("go", "list", "-tags", tags, "-deps", mod+pkg).CombinedOutput()
			if err != nil {
				t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
			}
			var bad []string
			for _, d := range strings.Fields(string(out)) {
				for _, b := range banned {
					if strings.HasPrefix(d, b) {
						bad = append(bad, d)
					}
				}
			}
			if len(bad) > 0 {
				t.Errorf("%s (tags %q) links %d packages of etcd's client stack: %s", pkg, tags, len(bad), strings.Join(bad[:min(len(bad), 5)], " "))
			}
		}
	}
}
