package registry

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestOpen: Open hands a URL to the opener of its scheme, with the options
// unchanged; a URL without a scheme wraps ErrBadURL, one with a scheme the
// options lack wraps ErrUnknownScheme and lists the known ones; no error
// carries the URL's password.
func TestOpen(t *testing.T) {
	type call struct {
		url string
		o   Options
	}
	var got []call
	opener := func(_ context.Context, url string, o Options) (Registry, error) {
		got = append(got, call{url, o})
		return nil, nil
	}
	schemes := map[string]Opener{"dir": opener, "etcd": opener}
	o := Options{Schemes: schemes, VNI: 7, Lease: &Lease{}}
	for _, url := range []string{"dir:/x", "etcd://h:1/p?ttl=3s"} {
		if _, err := Open(t.Context(), url, o); err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
	}
	if len(got) != 2 || got[0].url != "dir:/x" || got[1].url != "etcd://h:1/p?ttl=3s" || got[1].o.VNI != 7 || got[1].o.Lease != o.Lease {
		t.Errorf("openers called with %+v", got)
	}
	for _, tc := range []struct {
		url  string
		is   error
		want string
	}{
		{"nosuch://alice:s3cret@h/p", ErrUnknownScheme, `registry: unknown scheme "nosuch" in store URL "nosuch://alice:xxxxx@h/p" (supported: dir, etcd)`},
		{"/plain/path", ErrBadURL, `registry: bad store URL "/plain/path": no scheme`},
		{":x", ErrBadURL, "no scheme"},
		{"", ErrBadURL, "no scheme"},
	} {
		_, err := Open(t.Context(), tc.url, o)
		if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v, want %v containing %q", tc.url, err, tc.is, tc.want)
		}
	}
	if _, err := Open(t.Context(), "dir:/x", Options{}); !errors.Is(err, ErrUnknownScheme) || !strings.Contains(err.Error(), "(supported: )") {
		t.Errorf("Open without schemes = %v, want ErrUnknownScheme", err)
	}
}

// TestMarks: BadURL and Unavailable keep the error's text and chain and add
// their sentinel.
func TestMarks(t *testing.T) {
	base := errors.New("etcdreg: connect to h:1: refused")
	for _, tc := range []struct {
		err error
		is  error
		not error
	}{
		{BadURL(base), ErrBadURL, ErrUnavailable},
		{Unavailable(base), ErrUnavailable, ErrBadURL},
	} {
		if tc.err.Error() != base.Error() || !errors.Is(tc.err, base) || !errors.Is(tc.err, tc.is) || errors.Is(tc.err, tc.not) {
			t.Errorf("%v: is %v %v, is %v %v", tc.err, tc.is, errors.Is(tc.err, tc.is), tc.not, errors.Is(tc.err, tc.not))
		}
	}
}
