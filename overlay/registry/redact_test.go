package registry

import "testing"

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"etcd://alice:s3cret@h:2379/p?ttl=5", "etcd://alice:xxxxx@h:2379/p?ttl=5"},
		{"etcds://alice:s3cret@a:1,b:2/p", "etcds://alice:xxxxx@a:1,b:2/p"},
		{"etcd://alice:s3/cr@et@h/p", "etcd://alice:xxxxx@h/p"},
		{"etcd://alice@h/p", "etcd://alice@h/p"},
		{"etcd://h:2379/p?ca=/x@y", "etcd://h:2379/p?ca=/x@y"},
		{"etcd://h:2379/p", "etcd://h:2379/p"},
		{"dir:/var/lib/overlayd/store", "dir:/var/lib/overlayd/store"},
		{"", ""},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
