package rtnl_test

import (
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
)

func TestMessageIter(t *testing.T) {
	var b []byte
	for i, body := range [][]byte{{1, 2, 3}, {}, {9, 9, 9, 9, 9}} {
		b = rtnl.AppendHeader(b, rtnl.Header{Length: uint32(rtnl.HeaderLen + len(body)), Type: uint16(20 + i), Sequence: uint32(i)})
		b = append(b, body...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	it := rtnl.NewMessageIter(b)
	var lens []int
	for it.Next() {
		m := it.Message()
		if int(m.Header.Type) != 20+len(lens) {
			t.Errorf("message %d has type %d", len(lens), m.Header.Type)
		}
		lens = append(lens, len(m.Data))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if len(lens) != 3 || lens[0] != 3 || lens[1] != 0 || lens[2] != 5 {
		t.Fatalf("payload lengths %v, want [3 0 5]", lens)
	}
}

func TestMessageIterRejectsBadFraming(t *testing.T) {
	for name, b := range map[string][]byte{
		"length past end":  rtnl.AppendHeader(nil, rtnl.Header{Length: 40}),
		"length below 16":  rtnl.AppendHeader(nil, rtnl.Header{Length: 8}),
		"trailing garbage": append(rtnl.AppendHeader(nil, rtnl.Header{Length: 16}), 1, 2, 3),
	} {
		it := rtnl.NewMessageIter(b)
		for it.Next() {
		}
		if it.Err() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
