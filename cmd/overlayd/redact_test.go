//go:build !noetcd

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestStoreCredentialsRedacted: with an etcd store that needs a password,
// neither the daemon's log (at debug) nor the output and errors of any
// command, successful or not, nor --help carry the password.
func TestStoreCredentialsRedacted(t *testing.T) {
	const secret = "Pw-9c1f-Sekr1t"
	lab := newEtcdLab(t, 1, "")
	if err := lab.srv.EnableAuth(secret); err != nil {
		t.Fatal(err)
	}
	nd := lab.nodes[0]
	good := strings.Replace(lab.srv.URL("ovt", ""), "etcd://", "etcd://root:"+secret+"@", 1)
	nd.store = good
	var seen []string
	check := func(what, out string) {
		t.Helper()
		seen = append(seen, what)
		if strings.Contains(out, "Sekr1t") {
			t.Errorf("%s carries the password:\n%s", what, out)
		}
	}
	r := nd.run("attach", "c1", "--ip", "198.51.100.2/24")
	if r.code != 0 {
		t.Fatalf("attach with credentials: exit %d: %s", r.code, r.stderr)
	}
	check("attach", r.stdout+r.stderr)
	d := nd.startDaemon("--log-level", "debug")
	if !strings.Contains(d.String(), `store=etcd://root:xxxxx@`) {
		t.Errorf("the daemon does not log its store, redacted:\n%s", d)
	}
	r = nd.run("status")
	check("status", r.stdout+r.stderr)
	d.stop(t)
	check("the daemon's log", d.String())

	// Failures: a wrong password, an unreachable etcd, a bad URL, a mode the
	// store cannot serve.
	for _, tc := range []struct{ store, args string }{
		{strings.Replace(good, secret, secret+"x", 1), "attach c2 --ip 198.51.100.3/24"},
		{"etcd://root:" + secret + "@127.0.0.1:1/ovt?timeout=300ms", "attach c2 --ip 198.51.100.3/24"},
		{"etcd://root:" + secret + "@127.0.0.1:1/ovt?bogus=1", "run"},
		{"etcd://root:" + secret + "@h:notaport/ovt", "attach c2 --ip 198.51.100.3/24"},
		{"nosuch://root:" + secret + "@h/x", "detach c1"},
	} {
		nd.store = tc.store
		r := nd.run(strings.Fields(tc.args)...)
		if r.code == 0 {
			t.Errorf("overlayd %s with --store %s succeeded: %s", tc.args, tc.store, r.stdout)
		}
		check("overlayd "+tc.args+" (failing)", r.stdout+r.stderr)
	}
	nd.store = good

	// --help shows the default --store, which may come from the environment.
	var out, errb bytes.Buffer
	t.Setenv("OVERLAYD_STORE", good)
	runMain(t.Context(), []string{"run", "--help"}, &out, &errb)
	check("run --help", out.String()+errb.String())
	if !strings.Contains(out.String()+errb.String(), "root:xxxxx@") {
		t.Errorf("--help does not show the redacted default store:\n%s%s", out.String(), errb.String())
	}
}
