package rtnl

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/overlaynet/overlaynet/internal/golden"
)

// TestDecodersSurviveMutations feeds every decoder systematic mutations of
// the captured kernel messages (in host byte order): each byte set to 0x00,
// 0xff and a seeded random value, every truncation, and random multi-byte
// corruptions. A decoder may fail on any of them but must never panic.
// It is the fuzz targets' property, deterministic and without the fuzzing
// engine, so that it also runs where the engine cannot: under qemu-user,
// on big-endian architectures (make test-bigendian), where lengths and
// offsets are read in the other byte order.
func TestDecodersSurviveMutations(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "kernel", "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	for _, p := range files {
		raw, err := golden.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		try := func(what string, b []byte) {
			n++
			if err := decodeAll(b); err != nil {
				t.Fatalf("%s, %s: %v", filepath.Base(p), what, err)
			}
		}
		b := make([]byte, len(raw))
		for i := range raw {
			for _, v := range []byte{0, 0xff, byte(rng.Uint32())} {
				copy(b, raw)
				b[i] = v
				try(fmt.Sprintf("byte %d = %#x", i, v), b)
			}
			try(fmt.Sprintf("truncated to %d", i), raw[:i])
		}
		for k := 0; k < 200; k++ {
			copy(b, raw)
			for j := 0; j < 1+rng.IntN(8); j++ {
				b[rng.IntN(len(b))] = byte(rng.Uint32())
			}
			try(fmt.Sprintf("random corruption %d", k), b)
		}
	}
	t.Logf("%d mutated messages decoded without a panic", n)
}

// decodeAll runs every decoder over b (a whole netlink message) and turns
// a panic into an error.
func decodeAll(b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
	}()
	var ev Event
	Classify(b, &ev)
	it := NewMessageIter(b)
	for it.Next() {
	}
	h, body, perr := parseHeader(b)
	if perr != nil {
		if len(b) < HeaderLen {
			return nil
		}
		body = b[HeaderLen:] // decode the payload under the claimed header anyway
		h, _, _ = parseOrigHeader(b)
	}
	var nm NeighMessage
	nm.UnmarshalBinary(body)
	var lm LinkMessage
	lm.UnmarshalBinary(body)
	var am AddressMessage
	am.UnmarshalBinary(body)
	var rm RouteMessage
	rm.UnmarshalBinary(body)
	var np NeighTableParams
	np.UnmarshalBinary(body)
	DecodeInetDevConf(body)
	parseAck(h, body)
	doneError(h.Type, Message{Header: h, Data: body})
	// The attributes after the fixed struct of the message's family.
	off := map[uint16]int{MsgNewNeigh: 12, MsgGetNeigh: 12, MsgNewLink: 16,
		MsgNewAddr: 8, MsgNewRoute: 12, MsgError: 4 + HeaderLen}[h.Type]
	if off <= len(body) {
		walk(NewAttributeDecoder(body[off:]), 0)
	}
	return nil
}

// walk reads every attribute of ad with the accessors of its size (a size
// mismatch is a plain error, tested elsewhere), descending into each as a
// nest.
func walk(ad AttributeDecoder, depth int) {
	for ad.Next() {
		_ = ad.String()
		switch ad.Len() {
		case 1:
			ad.Uint8()
		case 2:
			ad.Uint16()
			ad.Uint16BE()
		case 4:
			ad.Uint32()
			ad.Addr()
		case 6:
			ad.MAC()
		case 8:
			ad.Uint64()
		case 16:
			ad.Addr()
		}
		if depth < 4 {
			walk(ad.Nest(), depth+1)
		}
	}
}
