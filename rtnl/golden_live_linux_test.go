//go:build linux

package rtnl_test

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/overlaynet/overlaynet/rtnl"
	"golang.org/x/sys/unix"
)

// goldenVarying are the dump fields whose values the kernel chooses anew on
// each capture: interface indexes (compared as present and non-zero, not by
// value). Cache-info timestamps are never dumped.
var goldenVarying = map[string]bool{"ifindex": true, "index": true, "master": true, "link": true, "oif": true}

// TestGoldenMatchesKernel rebuilds the capture topology (as root), captures
// every scenario of testdata/kernel/README.md from the running kernel and
// compares each message, decoded field by field, with the stored capture:
// the goldens the codec tests decode must still be what this kernel sends.
// Interface indexes are only required to be set; everything else the
// golden dumps hold must be equal. On a difference, check the kernel's
// change and recapture with `go test ./rtnl -run Golden -update`.
func TestGoldenMatchesKernel(t *testing.T) {
	live := captureKernelMessages(t)
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			h, body, _ := readKernelMessage(t, tc.name)
			stored, err := dumpKernelMessage(h, body)
			if err != nil {
				t.Fatalf("stored %s: %v", tc.name, err)
			}
			raw, ok := live[tc.name+".bin"]
			if !ok {
				t.Fatalf("the capture has no %s", tc.name)
			}
			lh, lbody, err := rtnl.ParseHeader(raw)
			if err != nil {
				t.Fatalf("live %s: %v", tc.name, err)
			}
			got, err := dumpKernelMessage(lh, lbody)
			if err != nil {
				t.Fatalf("live %s: %v", tc.name, err)
			}
			compareDumps(t, tc.name, got, stored)
		})
	}
	for _, name := range []string{"ack_error", "ack_ok"} {
		t.Run(name, func(t *testing.T) {
			_, _, raw := readKernelMessage(t, name)
			compareDumps(t, name, ackDump(t, live[name+".bin"]), ackDump(t, raw))
		})
	}
}

// compareDumps compares two golden dumps key by key.
func compareDumps(t *testing.T, name, live, stored string) {
	t.Helper()
	lk, sk := dumpFields(live), dumpFields(stored)
	for k, sv := range sk {
		lv, ok := lk[k]
		switch {
		case !ok:
			t.Errorf("%s: %s=%s stored, absent from the running kernel's message", name, k, sv)
		case goldenVarying[k]:
			if lv == "0" || sv == "0" {
				t.Errorf("%s: %s is %s live, %s stored: want an interface index on both", name, k, lv, sv)
			}
		case lv != sv:
			t.Errorf("%s: %s is %s from the running kernel, %s stored", name, k, lv, sv)
		}
	}
	for k, lv := range lk {
		if _, ok := sk[k]; !ok {
			t.Errorf("%s: %s=%s from the running kernel, absent from the stored capture", name, k, lv)
		}
	}
}

func dumpFields(d string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(d), "\n") {
		k, v, _ := strings.Cut(l, "=")
		m[k] = v
	}
	return m
}

// ackDump is the dump of an NLMSG_ERROR: its flags, the error, the echoed
// request's type and flags (not its sequence number and port id), and the
// extended-ACK attributes.
func ackDump(t *testing.T, raw []byte) string {
	t.Helper()
	h, data, err := rtnl.ParseHeader(raw)
	if err != nil || h.Type != unix.NLMSG_ERROR || len(data) < 4+rtnl.HeaderLen {
		t.Fatalf("not an NLMSG_ERROR: %+v %v", h, err)
	}
	var d strings.Builder
	fmt.Fprintf(&d, "nlmsg_flags=%#x\n", h.Flags)
	fmt.Fprintf(&d, "error=%d\n", int32(binary.NativeEndian.Uint32(data)))
	orig := data[4:]
	olen := binary.NativeEndian.Uint32(orig)
	fmt.Fprintf(&d, "request=%s\n", rtnl.MessageTypeName(binary.NativeEndian.Uint16(orig[4:])))
	fmt.Fprintf(&d, "request_flags=%#x\n", binary.NativeEndian.Uint16(orig[6:]))
	tlvs := orig[rtnl.HeaderLen:]
	if h.Flags&0x100 == 0 { // not NLM_F_CAPPED: the whole request is echoed
		fmt.Fprintf(&d, "request_len=%d\n", olen)
		if n := rtnl.Align(int(olen)); n <= len(orig) {
			tlvs = orig[n:]
		}
	}
	if h.Flags&0x200 != 0 { // NLM_F_ACK_TLVS
		ad := rtnl.NewAttributeDecoder(tlvs)
		for ad.Next() {
			switch ad.Type() {
			case 1: // NLMSGERR_ATTR_MSG
				fmt.Fprintf(&d, "msg=%s\n", ad.String())
			default:
				fmt.Fprintf(&d, "tlv_%d=% x\n", ad.Type(), ad.Bytes())
			}
		}
	}
	return d.String()
}
