package rtnl

// ACK parsing is unexported, so its fuzz target and its golden test live in
// the internal test package. The captured ACKs are described in
// testdata/kernel/README.md.

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/overlaynet/overlaynet/internal/golden"
)

// readKernelAck reads a captured NLMSG_ERROR message.
func readKernelAck(t testing.TB, name string) (Header, []byte, []byte) {
	t.Helper()
	raw, err := golden.Read(filepath.Join("..", "testdata", "kernel"), name)
	if err != nil {
		t.Fatalf("read %s (regenerate with `go test ./rtnl -run Golden -update` as root): %v", name, err)
	}
	h, data, err := ParseHeader(raw)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return h, data, raw
}

// TestGoldenAck decodes the captured ACKs: an error with the kernel's
// extended-ACK text, and a capped success ACK.
func TestGoldenAck(t *testing.T) {
	h, data, _ := readKernelAck(t, "ack_error")
	if h.Type != MsgError || h.Flags&flagAckTLVs == 0 || h.Flags&flagCapped != 0 {
		t.Fatalf("ack_error header %+v: want NLMSG_ERROR with NLM_F_ACK_TLVS, not capped", h)
	}
	seq, err := parseAck(h, data)
	var oe *OpError
	if !errors.As(err, &oe) {
		t.Fatalf("ack_error: got %v, want *OpError", err)
	}
	if seq != 1001 || oe.Op != "RTM_NEWLINK" || !errors.Is(err, syscall.EOPNOTSUPP) || oe.Message != "Unknown device type" {
		t.Errorf("ack_error: seq %d, %+v; want seq 1001, RTM_NEWLINK, EOPNOTSUPP, \"Unknown device type\"", seq, oe)
	}

	h, data, _ = readKernelAck(t, "ack_ok")
	if h.Type != MsgError || h.Flags&flagCapped == 0 {
		t.Fatalf("ack_ok header %+v: want a capped NLMSG_ERROR", h)
	}
	seq, err = parseAck(h, data)
	if err != nil || seq != 1002 {
		t.Errorf("ack_ok: seq %d err %v; want 1002, nil", seq, err)
	}
}

// ackMessage builds an NLMSG_ERROR payload by hand: code, the original
// header (and body unless capped), then extended-ACK attributes.
func ackMessage(code int32, orig Header, body []byte, capped bool, msg string) (uint16, []byte) {
	b := binary.NativeEndian.AppendUint32(nil, uint32(code))
	b = AppendHeader(b, orig)
	flags := uint16(0)
	if capped {
		flags |= flagCapped
	} else {
		b = append(b, body...)
	}
	if msg != "" {
		flags |= flagAckTLVs
		ae := NewAttributeEncoder(b)
		ae.String(nlmsgerrAttrMsg, msg)
		ae.Uint32(nlmsgerrAttrOffs, 20)
		b = ae.Bytes()
	}
	return flags, b
}

func FuzzAck(f *testing.F) {
	for _, name := range []string{"ack_error", "ack_ok"} {
		h, data, _ := readKernelAck(f, name)
		f.Add(h.Flags, data)
	}
	orig := Header{Length: 24, Type: MsgNewNeigh, Flags: FlagRequest | FlagAck, Sequence: 7}
	for _, c := range []struct {
		code   int32
		capped bool
		msg    string
	}{
		{0, true, ""}, {-17, false, "exists"}, {-22, true, "bad"}, // -EEXIST, -EINVAL
		{5, false, ""}, {-1 << 31, false, "min"},
	} {
		fl, b := ackMessage(c.code, orig, make([]byte, 8), c.capped, c.msg)
		f.Add(fl, b)
	}
	f.Add(uint16(flagAckTLVs), make([]byte, 19))
	_, huge := ackMessage(-1, Header{Length: 0xffffffff}, nil, false, "x") // original length past the end
	f.Add(uint16(flagAckTLVs), huge)

	f.Fuzz(func(t *testing.T, flags uint16, data []byte) {
		seq, err := parseAck(Header{Type: MsgError, Flags: flags}, data)
		if len(data) < 4+HeaderLen {
			if err == nil {
				t.Fatalf("a %d-byte error message parsed as a success", len(data))
			}
			return
		}
		code := int32(binary.NativeEndian.Uint32(data[0:4]))
		origSeq := binary.NativeEndian.Uint32(data[12:16])
		if seq != origSeq {
			t.Fatalf("seq %d, the original header says %d", seq, origSeq)
		}
		var oe *OpError
		switch {
		case code == 0:
			if err != nil {
				t.Fatalf("code 0 gave %v", err)
			}
		case !errors.As(err, &oe):
			t.Fatalf("code %d gave %v, want *OpError", code, err)
		case oe.Op == "":
			t.Fatal("OpError without Op")
		case code < 0 && code != -1<<31 && !errors.Is(err, ErrnoFromLinux(uint32(-code))):
			t.Fatalf("code %d: %v does not wrap errno %d", code, err, -code)
		case oe.Message != "" && !strings.Contains(string(data), oe.Message):
			t.Fatalf("extended-ACK text %q is not in the message", oe.Message)
		}
		if err != nil {
			_ = err.Error()
		}
	})
}
