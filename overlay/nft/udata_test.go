package nft

import (
	"bytes"
	"testing"
)

func TestUdata(t *testing.T) {
	good := ruleUserData("overlaynet-egress masquerade", []byte{1, 2, 3, 4, 5, 6, 7, 8})
	for _, tc := range []struct {
		name    string
		ud      []byte
		comment string
		ok      bool
		digest  []byte
	}{
		{"ours", good, "overlaynet-egress masquerade", true, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{"empty", nil, "", false, nil},
		{"one byte", []byte{0}, "", false, nil},
		{"truncated comment", []byte{0, 200, 'a', 'b'}, "", false, nil},
		{"comment then truncated digest", []byte{0, 2, 'x', 0, udataTypeDigest, 9, 1}, "x", true, nil},
		{"other record first", []byte{7, 1, 'z', 0, 2, 'y', 0}, "y", true, nil},
		{"comment without NUL", []byte{0, 1, 'q'}, "q", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ok := udataComment(tc.ud)
			if c != tc.comment || ok != tc.ok {
				t.Errorf("comment %q %v, want %q %v", c, ok, tc.comment, tc.ok)
			}
			if d := udataRecord(tc.ud, udataTypeDigest); !bytes.Equal(d, tc.digest) {
				t.Errorf("digest % x, want % x", d, tc.digest)
			}
		})
	}
}

// FuzzUdata: rule userdata from the kernel (written by any tool) never
// makes the parser panic, and what it returns lies inside the input.
func FuzzUdata(f *testing.F) {
	f.Add(ruleUserData("tag", []byte{1, 2, 3, 4, 5, 6, 7, 8}))
	f.Add([]byte{0, 200, 'a'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, ud []byte) {
		c, ok := udataComment(ud)
		if ok && len(c) > len(ud) {
			t.Fatalf("comment %q longer than the input", c)
		}
		if d := udataRecord(ud, udataTypeDigest); len(d) > len(ud) {
			t.Fatalf("digest longer than the input")
		}
	})
}
