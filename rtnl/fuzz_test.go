package rtnl_test

// Native fuzz targets, one per decoded type, each fuzzing its own type
// (jsimonetti's targets all fuzz LinkMessage). Seeds: the captured kernel
// messages of testdata/kernel plus handmade edge cases; the fuzzer's own
// finds go to testdata/fuzz/<Target>/. Each checks that decoding never
// panics and, where the type round-trips, that decode → encode → decode
// gives back the first decode. Run one with
//
//	go test ./rtnl -run '^$' -fuzz '^FuzzNeighMessage$' -fuzztime 20s
//
// FuzzAck lives in fuzz_internal_test.go (parseAck is unexported).

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/overlaynet/overlaynet/internal/golden"
	"github.com/overlaynet/overlaynet/rtnl"
)

// seedKernel adds the payload (after the netlink header) of each named
// captured message to f's corpus. A missing file fails the seeding: the
// captures are part of the repository.
func seedKernel(f *testing.F, names ...string) {
	f.Helper()
	for _, n := range names {
		_, body, _ := readKernelMessage(f, n)
		f.Add(bytes.Clone(body))
	}
}

// seedAttrs adds the attributes of each captured message (the payload after
// a fixed header of hdrLen bytes) to f's corpus.
func seedAttrs(f *testing.F, hdrLen int, names ...string) {
	f.Helper()
	for _, n := range names {
		_, body, _ := readKernelMessage(f, n)
		f.Add(bytes.Clone(body[hdrLen:]))
	}
}

var (
	neighFiles = []string{"l3miss", "l3miss_v6", "l2miss", "app_solicit", "app_solicit_probe", "fdb_echo"}
	linkFiles  = []string{"link_vxlan", "link_veth"}
)

// attr builds one attribute by hand (no encoder), for malformed seeds.
func rawAttr(typ uint16, length uint16, payload ...byte) []byte {
	b := binary.NativeEndian.AppendUint16(nil, length)
	b = binary.NativeEndian.AppendUint16(b, typ)
	return append(b, payload...)
}

func catBytes(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func fuzzMarshal(f *testing.F, m interface{ MarshalBinary() ([]byte, error) }) []byte {
	f.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// normNeigh drops what a NeighMessage decodes but never encodes
// (NDA_CACHEINFO, NDA_FDB_EXT_ATTRS, the bulk-delete masks), so that a
// decode of the re-encoding can be compared with the first decode.
func normNeigh(m rtnl.NeighMessage) rtnl.NeighMessage {
	m.CacheInfo = rtnl.NeighCacheInfo{}
	var keep rtnl.NeighAttrSet
	for a := rtnl.NeighAttr(0); a < 32; a++ {
		switch a {
		case rtnl.NeighAttrCacheInfo, rtnl.NeighAttrFDBExtAttrs, rtnl.NeighAttrNDMStateMask, rtnl.NeighAttrNDMFlagsMask:
			continue
		}
		if m.Present.Has(a) {
			keep.Set(a)
		}
	}
	m.Present = keep
	if len(m.LLAddr) == 0 {
		m.LLAddr = nil
	}
	return m
}

func FuzzNeighMessage(f *testing.F) {
	seedKernel(f, neighFiles...)
	ndmsg := make([]byte, 12)
	ndmsg[0] = rtnl.FamilyInet
	f.Add([]byte{})
	f.Add(ndmsg[:11])
	f.Add(ndmsg)
	f.Add(catBytes(ndmsg, rawAttr(1, 8, 198, 51, 100, 9)))                                     // NDA_DST v4
	f.Add(catBytes(ndmsg, rawAttr(1, 7, 198, 51, 100)))                                        // NDA_DST of 3 bytes
	f.Add(catBytes(ndmsg, rawAttr(1, 20, make([]byte, 16)...)))                                // NDA_DST v6
	f.Add(catBytes(ndmsg, rawAttr(2, 4)))                                                      // empty NDA_LLADDR
	f.Add(catBytes(ndmsg, rawAttr(2, 40, make([]byte, 36)...)))                                // NDA_LLADDR > MAX_ADDR_LEN
	f.Add(catBytes(ndmsg, rawAttr(6, 6, 0x12, 0xb6, 0, 0)))                                    // NDA_PORT 4790
	f.Add(catBytes(ndmsg, rawAttr(6, 8, 0x12, 0xb6, 0, 0)))                                    // NDA_PORT of 4 bytes
	f.Add(catBytes(ndmsg, rawAttr(7, 8, ne32(1<<24)...)))                                      // NDA_VNI sentinel
	f.Add(catBytes(ndmsg, rawAttr(3, 12, make([]byte, 8)...)))                                 // short NDA_CACHEINFO
	f.Add(catBytes(ndmsg, rawAttr(14|rtnl.AttrNested, 8, rawAttr(1, 4)...)))                   // NDA_FDB_EXT_ATTRS
	f.Add(catBytes(ndmsg, rawAttr(99, 5, 1, 0, 0, 0)))                                         // unknown attribute
	f.Add(catBytes(ndmsg, rawAttr(1, 200, 1, 2, 3, 4)))                                        // length past the end
	f.Add(catBytes(ndmsg, rawAttr(1, 2)))                                                      // length below the header
	f.Add(catBytes(ndmsg, []byte{8, 0}))                                                       // truncated header
	f.Add(catBytes(ndmsg, rawAttr(10, 8, 0xff, 0xff, 0xff, 0xff), rawAttr(13, 8, 1, 0, 0, 0))) // netnsid -1, nh id
	fdb := rtnl.FDBEntry{Ifindex: 3, MAC: goldenMAC("02:42:c6:33:64:03"), Dst: netip.MustParseAddr("192.0.2.3"),
		VNI: 0, HasVNI: true, Port: 4790, Via: 2, SrcVNI: 9}.Message()
	f.Add(fuzzMarshal(f, fdb))

	f.Fuzz(func(t *testing.T, b []byte) {
		var m rtnl.NeighMessage
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		_ = m.String()
		_, _ = m.MAC()
		enc, err := m.MarshalBinary()
		if err != nil {
			if len(m.LLAddr) <= 32 {
				t.Fatalf("re-encode of a decoded message failed: %v (%+v)", err, m)
			}
			return // the encoder refuses an NDA_LLADDR the kernel would refuse
		}
		var m2 rtnl.NeighMessage
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode of the re-encoding failed: %v\n% x", err, enc)
		}
		if a, b := normNeigh(m), normNeigh(m2); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip differs:\nfirst  %+v\nsecond %+v", a, b)
		}
	})
}

func FuzzLinkMessage(f *testing.F) {
	seedKernel(f, linkFiles...)
	ifi := make([]byte, 16)
	f.Add([]byte{})
	f.Add(ifi[:15])
	f.Add(ifi)
	f.Add(fuzzMarshal(f, rtnl.NewBridge("br0")))
	f.Add(fuzzMarshal(f, rtnl.NewVxlan("vxlan1", rtnl.VxlanInfo{ID: 42, Port: 4789, Proxy: true, L2Miss: true,
		L3Miss: true, Local: netip.MustParseAddr("192.0.2.1"), PortLow: 1, PortHigh: 2})))
	veth := rtnl.NewVethPair("veth1", rtnl.LinkMessage{Name: "eth0", MTU: 1450, NetNSFD: 5})
	f.Add(fuzzMarshal(f, veth))
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_LINKINFO, 4)))                                                                 // empty LINKINFO
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_LINKINFO, 16, rawAttr(rtnl.IFLA_INFO_KIND, 10, 'v', 'e', 't', 'h', 0, 0)...))) // veth, no data
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_LINKINFO, 20, catBytes(rawAttr(rtnl.IFLA_INFO_KIND, 10, 'v', 'e', 't', 'h', 0, 0),
		rawAttr(rtnl.IFLA_INFO_DATA, 4))...))) // veth, empty data
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_LINKINFO, 28, catBytes(rawAttr(rtnl.IFLA_INFO_KIND, 10, 'v', 'e', 't', 'h', 0, 0),
		rawAttr(rtnl.IFLA_INFO_DATA, 12, rawAttr(1, 8, 0, 0, 0, 0)...))...))) // peer shorter than ifinfomsg
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_IFNAME, 24, []byte("a-name-longer-than-15\x00\x00\x00")...)))
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_MTU, 6, 1, 2)))           // short MTU
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_ADDRESS, 8, 1, 2, 3, 4))) // 4-byte address
	f.Add(catBytes(ifi, rawAttr(rtnl.IFLA_MASTER, 8, ne32(0)...), rawAttr(rtnl.IFLA_LINK_NETNSID, 8, ne32(1)...)))

	f.Fuzz(func(t *testing.T, b []byte) {
		var m rtnl.LinkMessage
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		_ = m.Kind()
		_ = m.Flags.String()
		_ = m.OperState.String()
		enc, err := m.MarshalBinary()
		if err != nil {
			return // names over 15 bytes, VNIs over 24 bits: the encoder refuses what the kernel refuses
		}
		var m2 rtnl.LinkMessage
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode of the re-encoding failed: %v\n% x", err, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\nfirst  %+v %+v\nsecond %+v %+v", m, m.Info, m2, m2.Info)
		}
	})
}

func FuzzAddressMessage(f *testing.F) {
	seedKernel(f, "addr_v4")
	ifa := catBytes([]byte{rtnl.FamilyInet, 24, 0, 0}, ne32(2)) // ifaddrmsg, index 2
	f.Add([]byte{})
	f.Add(ifa[:7])
	f.Add(ifa)
	v6 := rtnl.NewAddress(2, netip.MustParsePrefix("2001:db8::1/64"))
	v6.Flags = rtnl.AddrNoPrefixRoute | rtnl.AddrNoDAD
	v6.CacheInfo = rtnl.AddrCacheInfo{Preferred: 10, Valid: 20}
	f.Add(fuzzMarshal(f, v6))
	f.Add(catBytes(ifa, rawAttr(rtnl.IFA_FLAGS, 8, 0x80, 0x02, 0, 0)))         // wide flags
	f.Add(catBytes(ifa, rawAttr(rtnl.IFA_FLAGS, 6, 0x80, 0x02)))               // short IFA_FLAGS
	f.Add(catBytes(ifa, rawAttr(rtnl.IFA_CACHEINFO, 12, make([]byte, 8)...)))  // short cache info
	f.Add(catBytes(ifa, rawAttr(rtnl.IFA_ADDRESS, 9, 1, 2, 3, 4, 5, 0, 0, 0))) // 5-byte address
	f.Add(catBytes(ifa, rawAttr(rtnl.IFA_LABEL, 4)))                           // empty label

	f.Fuzz(func(t *testing.T, b []byte) {
		var m rtnl.AddressMessage
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		_ = m.Prefix()
		_ = m.Flags.String()
		_ = m.Scope.String()
		enc, err := m.MarshalBinary()
		if err != nil {
			if len(m.Label) < rtnl.IFNAMSIZ {
				t.Fatalf("re-encode of a decoded address failed: %v", err)
			}
			return
		}
		var m2 rtnl.AddressMessage
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode of the re-encoding failed: %v\n% x", err, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\nfirst  %+v\nsecond %+v", m, m2)
		}
	})
}

func FuzzRouteMessage(f *testing.F) {
	seedKernel(f, "route_default")
	rtm := make([]byte, 12)
	rtm[0], rtm[4] = rtnl.FamilyInet, rtnl.RouteTableMain
	f.Add([]byte{})
	f.Add(rtm[:11])
	f.Add(rtm)
	r := rtnl.NewRoute(netip.MustParsePrefix("203.0.113.0/24"), netip.MustParseAddr("198.51.100.1"), 3)
	r.Table, r.Priority = 1000, 20
	f.Add(fuzzMarshal(f, r))
	f.Add(fuzzMarshal(f, rtnl.NewDeviceRoute(netip.MustParsePrefix("2001:db8::/32"), 4)))
	f.Add(catBytes(rtm, rawAttr(rtnl.RTA_TABLE, 8, 5, 0, 0, 0))) // RTA_TABLE below 256, differs from rtm_table
	f.Add(catBytes(rtm, rawAttr(rtnl.RTA_GATEWAY, 6, 1, 2)))     // short gateway
	f.Add(catBytes(rtm, rawAttr(rtnl.RTA_MULTIPATH, 12, make([]byte, 8)...)))

	f.Fuzz(func(t *testing.T, b []byte) {
		var m rtnl.RouteMessage
		if err := m.UnmarshalBinary(b); err != nil {
			return
		}
		_ = m.Destination()
		_ = m.Type.String()
		_ = m.Protocol.String()
		enc, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of a decoded route failed: %v", err)
		}
		var m2 rtnl.RouteMessage
		if err := m2.UnmarshalBinary(enc); err != nil {
			t.Fatalf("decode of the re-encoding failed: %v\n% x", err, enc)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip differs:\nfirst  %+v\nsecond %+v", m, m2)
		}
	})
}

// walkedAttr is one attribute as the decoder reported it.
type walkedAttr struct {
	typ    uint16
	nested bool
	data   []byte
}

// walkAttrs walks b with the decoder, checks the invariants of every
// attribute, exercises every typed accessor that fits the payload size
// against an independent decoding, recurses into nests up to depth, and
// returns the attributes seen and the decoder's error.
func walkAttrs(t *testing.T, b []byte, depth int) ([]walkedAttr, error) {
	var out []walkedAttr
	ad := rtnl.NewAttributeDecoder(b)
	used := 0
	for ad.Next() {
		p := ad.Bytes()
		if ad.Len() != len(p) {
			t.Fatalf("Len %d != len(Bytes) %d", ad.Len(), len(p))
		}
		used += 4 + len(p)
		if used > len(b) {
			t.Fatalf("attributes claim %d bytes of %d", used, len(b))
		}
		if ad.Type()&(rtnl.AttrNested|rtnl.AttrByteOrder) != 0 {
			t.Fatalf("Type %#x keeps the flag bits", ad.Type())
		}
		switch len(p) {
		case 1:
			if ad.Uint8() != p[0] || ad.Flag() != (p[0] != 0) {
				t.Fatal("Uint8/Flag disagree with the payload")
			}
		case 2:
			if ad.Uint16() != binary.NativeEndian.Uint16(p) || ad.Uint16BE() != binary.BigEndian.Uint16(p) {
				t.Fatal("Uint16/Uint16BE disagree with the payload")
			}
		case 4:
			if ad.Uint32() != binary.NativeEndian.Uint32(p) || ad.Int32() != int32(binary.NativeEndian.Uint32(p)) {
				t.Fatal("Uint32/Int32 disagree with the payload")
			}
			if a := ad.Addr(); a != netip.AddrFrom4([4]byte(p)) {
				t.Fatal("Addr (4) disagrees with the payload")
			}
		case 6:
			if m := ad.MAC(); !bytes.Equal(m[:], p) {
				t.Fatal("MAC disagrees with the payload")
			}
		case 8:
			if ad.Uint64() != binary.NativeEndian.Uint64(p) {
				t.Fatal("Uint64 disagrees with the payload")
			}
		case 16:
			if a := ad.Addr(); a != netip.AddrFrom16([16]byte(p)) {
				t.Fatal("Addr (16) disagrees with the payload")
			}
		}
		if s := ad.String(); len(s) > len(p) || !bytes.HasPrefix(p, []byte(s)) {
			t.Fatalf("String %q is not a prefix of the payload", s)
		}
		if ad.Err() != nil {
			t.Fatalf("a right-sized accessor failed: %v", ad.Err())
		}
		if depth > 0 {
			nd := ad.Nest()
			for nd.Next() {
			}
			nested, nerr := walkAttrs(t, p, depth-1)
			if (nerr == nil) != (nd.Err() == nil) {
				t.Fatalf("Nest error %v, walking the payload %v", nd.Err(), nerr)
			}
			_ = nested
		}
		out = append(out, walkedAttr{ad.Type(), ad.Nested(), bytes.Clone(p)})
	}
	return out, ad.Err()
}

func FuzzAttributeDecoder(f *testing.F) {
	seedAttrs(f, 12, neighFiles...)
	seedAttrs(f, 16, linkFiles...)
	seedAttrs(f, 8, "addr_v4")
	seedAttrs(f, 12, "route_default")
	f.Add([]byte{})
	f.Add([]byte{4, 0})
	f.Add(rawAttr(1, 3))
	f.Add(rawAttr(1, 5, 7))               // unpadded last attribute
	f.Add(rawAttr(1|rtnl.AttrNested, 4))  // empty nest
	f.Add(rawAttr(0xffff, 8, 1, 2, 3, 4)) // every flag bit
	f.Add(rawAttr(2, 0xffff, 1, 2, 3, 4)) // length far past the end
	f.Add(catBytes(rawAttr(1, 6, 1, 2, 0, 0), rawAttr(2, 7, 1, 2, 3)))

	f.Fuzz(func(t *testing.T, b []byte) {
		attrs, err := walkAttrs(t, b, 3)

		// Wrong-sized accessors must fail, stop the iteration, and stick.
		ad := rtnl.NewAttributeDecoder(b)
		if ad.Next() {
			n := ad.Len()
			if n != 4 {
				_ = ad.Uint32()
				if ad.Err() == nil || ad.Next() {
					t.Fatalf("Uint32 on %d bytes: err %v, iteration goes on", n, ad.Err())
				}
			}
		}

		// Re-encode what was decoded and decode it again.
		var ae rtnl.AttributeEncoder
		for _, a := range attrs {
			typ := a.typ
			if a.nested {
				typ |= rtnl.AttrNested
			}
			ae.Raw(typ, a.data)
		}
		again, err2 := walkAttrs(t, ae.Bytes(), 0)
		if err2 != nil {
			t.Fatalf("re-encoded attributes fail to decode: %v", err2)
		}
		if !reflect.DeepEqual(attrs, again) {
			t.Fatalf("round trip differs (first decode err %v):\nfirst  %+v\nsecond %+v", err, attrs, again)
		}
	})
}

func FuzzMessageIter(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(goldenDir, "*.bin"))
	var all []byte
	for _, p := range files {
		raw, err := golden.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
		f.Add(raw[:len(raw)-1]) // truncated
		all = append(all, raw...)
	}
	f.Add(all) // a datagram of many messages
	f.Add([]byte{})
	f.Add(make([]byte, 15))
	f.Add(make([]byte, 16))                                                       // length 0
	f.Add(rtnl.AppendHeader(nil, rtnl.Header{Length: 17, Type: rtnl.MsgDone}))    // length past the end
	f.Add(append(rtnl.AppendHeader(nil, rtnl.Header{Length: 17, Type: 1}), 1))    // unpadded last message
	f.Add(append(rtnl.AppendHeader(nil, rtnl.Header{Length: 16, Type: 3}), 1, 2)) // trailing bytes

	f.Fuzz(func(t *testing.T, b []byte) {
		type msg struct {
			h    rtnl.Header
			data []byte
		}
		walk := func(b []byte) ([]msg, error) {
			var out []msg
			it := rtnl.NewMessageIter(b)
			for it.Next() {
				m := it.Message()
				if int(m.Header.Length) != rtnl.HeaderLen+len(m.Data) {
					t.Fatalf("header length %d, data %d", m.Header.Length, len(m.Data))
				}
				out = append(out, msg{m.Header, bytes.Clone(m.Data)})
			}
			return out, it.Err()
		}
		msgs, err := walk(b)
		// ParseHeader agrees with the iterator on the first message.
		if h, data, perr := rtnl.ParseHeader(b); perr == nil {
			if len(msgs) == 0 || msgs[0].h != h || !bytes.Equal(msgs[0].data, data) {
				t.Fatalf("ParseHeader %+v and the iterator (%d messages, err %v) disagree", h, len(msgs), err)
			}
		} else if len(msgs) != 0 {
			t.Fatalf("ParseHeader fails (%v) but the iterator yields %+v", perr, msgs[0].h)
		}
		// Re-encode the messages read and walk them again.
		var enc []byte
		for _, m := range msgs {
			enc = rtnl.AppendHeader(enc, m.h)
			enc = append(enc, m.data...)
			for len(enc)%4 != 0 {
				enc = append(enc, 0)
			}
		}
		again, err2 := walk(enc)
		if err2 != nil {
			t.Fatalf("re-encoded datagram fails: %v", err2)
		}
		if !reflect.DeepEqual(msgs, again) {
			t.Fatalf("round trip differs (first err %v):\nfirst  %+v\nsecond %+v", err, msgs, again)
		}
	})
}
