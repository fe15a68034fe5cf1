package golden

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"
)

const dir = "../../testdata/kernel"

// TestConvertEveryCapture: every capture, read in host order, converts to
// the other byte order and back to itself (the schema knows each of its attributes), and the
// converted copy differs from the original wherever the orders differ.
func TestConvertEveryCapture(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dir, "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures in %s: %v", dir, err)
	}
	other := binary.ByteOrder(binary.BigEndian)
	if Host() == other {
		other = binary.LittleEndian
	}
	for _, p := range files {
		raw, err := ReadFile(p)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		host, err := Convert(raw, Host(), Host())
		if err != nil || !bytes.Equal(host, raw) {
			t.Fatalf("%s: converting to its own order changed it (%v)", p, err)
		}
		conv, err := Convert(raw, Host(), other)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if bytes.Equal(conv, raw) {
			t.Errorf("%s: conversion to %s changed nothing", p, Name(other))
		}
		if l := other.Uint32(conv); int(l) != len(raw) {
			t.Errorf("%s: converted header length %d, want %d", p, l, len(raw))
		}
		back, err := Convert(conv, other, Host())
		if err != nil {
			t.Fatalf("%s: back: %v", p, err)
		}
		if !bytes.Equal(back, raw) {
			t.Errorf("%s: round trip through %s differs", p, Name(other))
		}
	}
}

// TestConvertNeighFields checks the fields of fdb_echo one by one in the
// other byte order: NDA_PORT stays in network order, NDA_VNI and the
// ndmsg's ifindex and state are swapped, addresses are left alone.
func TestConvertNeighFields(t *testing.T) {
	raw, err := Read(dir, "fdb_echo")
	if err != nil {
		t.Fatal(err)
	}
	other := binary.ByteOrder(binary.BigEndian)
	if Host() == other {
		other = binary.LittleEndian
	}
	b, err := Convert(raw, Host(), other)
	if err != nil {
		t.Fatal(err)
	}
	const ndmsg = 16
	if typ := other.Uint16(b[4:]); typ != 28 {
		t.Errorf("type %d, want RTM_NEWNEIGH (28)", typ)
	}
	if idx := other.Uint32(b[ndmsg+4:]); idx != 3 {
		t.Errorf("ifindex %d, want 3", idx)
	}
	if st := other.Uint16(b[ndmsg+8:]); st != 0x80|0x40 {
		t.Errorf("state %#x, want NOARP|PERMANENT", st)
	}
	seen := map[uint16][]byte{}
	for a := b[ndmsg+12:]; len(a) >= 4; {
		n := int(other.Uint16(a))
		seen[other.Uint16(a[2:])] = a[4:n]
		a = a[(n+3)&^3:]
	}
	if p := seen[6]; binary.BigEndian.Uint16(p) != 4790 {
		t.Errorf("NDA_PORT % x, want 4790 in network order", p)
	}
	if v := seen[7]; other.Uint32(v) != 43 {
		t.Errorf("NDA_VNI % x, want 43 in %s", v, Name(other))
	}
	if d := seen[1]; !bytes.Equal(d, []byte{192, 0, 2, 3}) {
		t.Errorf("NDA_DST % x, want 192.0.2.3", d)
	}
}

// TestConvertRefusesUnknown: an attribute outside the schema fails the
// conversion instead of being guessed.
func TestConvertRefusesUnknown(t *testing.T) {
	raw, err := Read(dir, "route_default")
	if err != nil {
		t.Fatal(err)
	}
	// Renumber the first attribute (after rtmsg) to an unassigned RTA type.
	b := append([]byte(nil), raw...)
	binary.NativeEndian.PutUint16(b[16+12+2:], 200)
	if _, err := Convert(b, Host(), binary.BigEndian); Host() != binary.ByteOrder(binary.BigEndian) && err == nil {
		t.Error("an unknown RTA attribute converted without error")
	}
	if _, err := Convert(b, Host(), binary.LittleEndian); Host() != binary.ByteOrder(binary.LittleEndian) && err == nil {
		t.Error("an unknown RTA attribute converted without error")
	}
}
