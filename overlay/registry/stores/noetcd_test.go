//go:build noetcd

package stores

import (
	"errors"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

// TestNoEtcd: a build without the etcd client refuses etcd URLs with an
// error wrapping ErrNoEtcd that says so, without the URL's password.
func TestNoEtcd(t *testing.T) {
	for _, url := range []string{"etcd://h:1/p", "etcds://alice:s3cret@h:1/p"} {
		_, err := registry.Open(t.Context(), url, registry.Options{Schemes: Schemes()})
		if !errors.Is(err, ErrNoEtcd) || !strings.Contains(err.Error(), "without etcd support") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: %v, want ErrNoEtcd", url, err)
		}
	}
}
