package etcdv3

import (
	"bytes"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// unmarshaler is a message of etcd's generated code (the oracle).
type unmarshaler interface {
	Unmarshal([]byte) error
	String() string
}

// TestRequestsAsEtcdDecodesThem: every request this package encodes,
// decoded by etcd's own generated code, is the request meant.
func TestRequestsAsEtcdDecodesThem(t *testing.T) {
	nested := OpTxn([]Cmp{Compare(Value("/k"), "=", "v")}, []Op{OpDelete("/k")}, []Op{OpGet("/k")})
	watch := OpGet("/w/", WithPrefix())
	tests := []struct {
		name string
		got  []byte
		into unmarshaler
		want unmarshaler
	}{
		{"range", ptr(OpGet("/a/", WithPrefix(), WithLimit(5), WithRev(7), WithSerializable())).appendRange(nil), &pb.RangeRequest{},
			&pb.RangeRequest{Key: []byte("/a/"), RangeEnd: []byte("/a0"), Limit: 5, Revision: 7, Serializable: true}},
		{"range all", ptr(OpGet("", WithPrefix())).appendRange(nil), &pb.RangeRequest{},
			&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}},
		{"put", ptr(OpPut("/k", "v", WithLease(0x1234))).appendPut(nil), &pb.PutRequest{},
			&pb.PutRequest{Key: []byte("/k"), Value: []byte("v"), Lease: 0x1234}},
		{"txn", appendTxn(nil,
			[]Cmp{Compare(CreateRevision("/a"), "=", 0), Compare(ModRevision("/b"), "<", int64(9)), Compare(Value("/c"), "!=", "x")},
			[]Op{OpPut("/a", "1"), OpGet("/b", WithRange("/c")), nested},
			[]Op{OpDelete("/d", WithPrefix())}), &pb.TxnRequest{},
			&pb.TxnRequest{
				Compare: []*pb.Compare{
					{Target: pb.Compare_CREATE, Key: []byte("/a"), TargetUnion: &pb.Compare_CreateRevision{CreateRevision: 0}},
					{Result: pb.Compare_LESS, Target: pb.Compare_MOD, Key: []byte("/b"), TargetUnion: &pb.Compare_ModRevision{ModRevision: 9}},
					{Result: pb.Compare_NOT_EQUAL, Target: pb.Compare_VALUE, Key: []byte("/c"), TargetUnion: &pb.Compare_Value{Value: []byte("x")}},
				},
				Success: []*pb.RequestOp{
					{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("/a"), Value: []byte("1")}}},
					{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("/b"), RangeEnd: []byte("/c")}}},
					{Request: &pb.RequestOp_RequestTxn{RequestTxn: &pb.TxnRequest{
						Compare: []*pb.Compare{{Target: pb.Compare_VALUE, Key: []byte("/k"), TargetUnion: &pb.Compare_Value{Value: []byte("v")}}},
						Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("/k")}}}},
						Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte("/k")}}}},
					}}},
				},
				Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte("/d"), RangeEnd: []byte("/e")}}}},
			}},
		{"watch", watch.appendWatchCreate(nil, 42), &pb.WatchRequest{},
			&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("/w/"), RangeEnd: []byte("/w0"), StartRevision: 42}}}},
		{"grant", appendInt(nil, 1, 10), &pb.LeaseGrantRequest{}, &pb.LeaseGrantRequest{TTL: 10}},
		{"keepalive", appendInt(nil, 1, 77), &pb.LeaseKeepAliveRequest{}, &pb.LeaseKeepAliveRequest{ID: 77}},
		{"authenticate", appendString(appendString(nil, 1, "root"), 2, "pw"), &pb.AuthenticateRequest{}, &pb.AuthenticateRequest{Name: "root", Password: "pw"}},
		{"compact", appendInt(nil, 1, 5), &pb.CompactionRequest{}, &pb.CompactionRequest{Revision: 5}},
	}
	for _, tt := range tests {
		if err := tt.into.Unmarshal(tt.got); err != nil {
			t.Errorf("%s: etcd cannot decode it: %v", tt.name, err)
			continue
		}
		if tt.into.String() != tt.want.String() {
			t.Errorf("%s: etcd decodes\n%s\nwant\n%s", tt.name, tt.into, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }

type marshaler interface{ Marshal() ([]byte, error) }

func mustMarshal(t testing.TB, m marshaler) []byte {
	t.Helper()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var (
	testHeader = &pb.ResponseHeader{ClusterId: 1 << 60, MemberId: 3, Revision: 99, RaftTerm: 4}
	testKV     = &mvccpb.KeyValue{Key: []byte("/k"), CreateRevision: 5, ModRevision: 7, Version: 2, Value: []byte("v"), Lease: 0x77}
)

// The answers etcd encodes, for the tests and as the fuzzers' seeds.
func answers(t testing.TB) map[string][]byte {
	rangeResp := &pb.RangeResponse{Header: testHeader, Kvs: []*mvccpb.KeyValue{testKV, {Key: []byte("/l")}}, More: true, Count: 3}
	return map[string][]byte{
		"range": mustMarshal(t, rangeResp),
		"txn": mustMarshal(t, &pb.TxnResponse{Header: testHeader, Succeeded: true, Responses: []*pb.ResponseOp{
			{Response: &pb.ResponseOp_ResponseRange{ResponseRange: rangeResp}},
			{Response: &pb.ResponseOp_ResponsePut{ResponsePut: &pb.PutResponse{Header: testHeader}}},
			{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: &pb.DeleteRangeResponse{Header: testHeader, Deleted: 2}}},
			{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: &pb.TxnResponse{Header: testHeader, Responses: []*pb.ResponseOp{
				{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Kvs: []*mvccpb.KeyValue{testKV}}}}}}}},
		}}),
		"watch": mustMarshal(t, &pb.WatchResponse{Header: testHeader, WatchId: 3, Events: []*mvccpb.Event{
			{Type: mvccpb.PUT, Kv: testKV}, {Type: mvccpb.DELETE, Kv: &mvccpb.KeyValue{Key: []byte("/d"), ModRevision: 8}}}}),
		"watch compacted": mustMarshal(t, &pb.WatchResponse{Header: testHeader, Canceled: true, CompactRevision: 50, CancelReason: "compacted"}),
		"grant":           mustMarshal(t, &pb.LeaseGrantResponse{Header: testHeader, ID: 0x1234, TTL: 10, Error: ""}),
		"ttl":             mustMarshal(t, &pb.LeaseTimeToLiveResponse{Header: testHeader, ID: 0x1234, TTL: -1, GrantedTTL: 10, Keys: [][]byte{[]byte("/k")}}),
		"keepalive":       mustMarshal(t, &pb.LeaseKeepAliveResponse{Header: testHeader, ID: 0x1234, TTL: 9}),
		"authenticate":    mustMarshal(t, &pb.AuthenticateResponse{Header: testHeader, Token: "tok.1"}),
	}
}

// TestAnswersAsEtcdEncodesThem: the answers etcd's generated code encodes
// decode to the same values here.
func TestAnswersAsEtcdEncodesThem(t *testing.T) {
	a := answers(t)
	h := "&{ClusterID:1152921504606846976 MemberID:3 Revision:99 RaftTerm:4}"
	kv := "&{Key:[47 107] CreateRevision:5 ModRevision:7 Version:2 Value:[118] Lease:119}"
	tests := []struct {
		name string
		dec  func([]byte) (any, error)
		want string
	}{
		{"range", func(b []byte) (any, error) { return decodeRangeResponse(b) },
			fmt.Sprintf("&{Header:%s Kvs:[%s &{Key:[47 108] CreateRevision:0 ModRevision:0 Version:0 Value:[] Lease:0}] More:true Count:3}", h, kv)},
		{"keepalive", func(b []byte) (any, error) { return decodeKeepAliveResponse(b) }, fmt.Sprintf("&{Header:%s ID:4660 TTL:9}", h)},
		{"grant", func(b []byte) (any, error) { return decodeGrantResponse(b) }, fmt.Sprintf("&{Header:%s ID:4660 TTL:10 Error:}", h)},
		{"ttl", func(b []byte) (any, error) { return decodeTimeToLiveResponse(b) }, fmt.Sprintf("&{Header:%s ID:4660 TTL:-1 GrantedTTL:10}", h)},
		{"authenticate", func(b []byte) (any, error) { return decodeAuthenticateResponse(b) }, "tok.1"},
	}
	for _, tt := range tests {
		got, err := tt.dec(a[tt.name])
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if s := fmt.Sprintf("%+v", deref(got)); s != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, s, tt.want)
		}
	}

	txn, err := decodeTxnResponse(a["txn"], 0)
	if err != nil {
		t.Fatal(err)
	}
	if !txn.Succeeded || len(txn.Responses) != 4 || txn.Header.Revision != 99 ||
		len(txn.Responses[0].GetResponseRange().Kvs) != 2 || txn.Responses[1].Put == nil || txn.Responses[2].Delete.Deleted != 2 ||
		txn.Responses[3].Txn == nil || !bytes.Equal(txn.Responses[3].Txn.Responses[0].GetResponseRange().Kvs[0].Value, []byte("v")) ||
		txn.Responses[1].GetResponseRange() != nil {
		t.Errorf("txn: %+v", txn)
	}

	wr, err := decodeWatchResponse(a["watch"])
	if err != nil {
		t.Fatal(err)
	}
	if wr.Header.Revision != 99 || len(wr.Events) != 2 || wr.Events[0].Type != EventTypePut || string(wr.Events[0].Kv.Key) != "/k" ||
		wr.Events[1].Type != EventTypeDelete || wr.Events[1].Kv.ModRevision != 8 || wr.Err() != nil {
		t.Errorf("watch: %+v", wr)
	}
	wr, err = decodeWatchResponse(a["watch compacted"])
	if err != nil || !wr.Canceled || wr.CompactRevision != 50 || wr.Err() != ErrCompacted {
		t.Errorf("watch compacted: %+v, %v", wr, err)
	}
}

func deref(v any) any {
	if p, ok := v.(*GetResponse); ok && p != nil {
		kvs := make([]string, len(p.Kvs))
		for i, kv := range p.Kvs {
			kvs[i] = fmt.Sprintf("%+v", kv)
		}
		return fmt.Sprintf("&{Header:%+v Kvs:[%s] More:%v Count:%d}", p.Header, joinSp(kvs), p.More, p.Count)
	}
	switch p := v.(type) {
	case *LeaseKeepAliveResponse:
		return fmt.Sprintf("&{Header:%+v ID:%d TTL:%d}", p.Header, p.ID, p.TTL)
	case *LeaseGrantResponse:
		return fmt.Sprintf("&{Header:%+v ID:%d TTL:%d Error:%s}", p.Header, p.ID, p.TTL, p.Error)
	case *LeaseTimeToLiveResponse:
		return fmt.Sprintf("&{Header:%+v ID:%d TTL:%d GrantedTTL:%d}", p.Header, p.ID, p.TTL, p.GrantedTTL)
	}
	return v
}

func joinSp(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

// TestDecodeRefuses: malformed messages are errors, unknown fields skipped.
func TestDecodeRefuses(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"unknown varint, fixed32, fixed64 and bytes fields", []byte{0xf8, 1, 5, 0xfd, 1, 1, 2, 3, 4, 0xf9, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0xfa, 1, 1, 'x'}, true},
		{"truncated tag", []byte{0x80}, false},
		{"truncated varint", []byte{0x20, 0x80}, false},
		{"length past the end", []byte{0x12, 5, 1}, false},
		{"huge length", []byte{0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1}, false},
		{"field 0", []byte{0x00, 1}, false},
		{"group", []byte{0x1b, 0x1c}, false},
		{"kvs as a varint", []byte{0x10, 1}, false},
		{"more as bytes", []byte{0x1a, 0}, false},
		{"truncated fixed64", []byte{0x09, 1, 2}, false},
	}
	for _, tt := range tests {
		_, err := decodeRangeResponse(tt.b)
		if (err == nil) != tt.ok {
			t.Errorf("%s: %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	deep := []byte{}
	for range maxTxnDepth + 2 {
		inner := append(append([]byte{0x22}, byte(len(deep))), deep...) // ResponseOp.response_txn
		if len(inner) > 127 {
			break
		}
		deep = append(append([]byte{0x1a}, byte(len(inner))), inner...) // TxnResponse.responses
	}
	if _, err := decodeTxnResponse(deep, 0); err == nil {
		t.Errorf("transactions nested %d deep accepted", maxTxnDepth+2)
	}
}

// fuzzDecoder fuzzes one decoder: it never panics, and what it accepts of
// the seed it decodes as etcd's code does (see the Test*Etcd* tests).
func fuzzDecoder(f *testing.F, seed string, dec func([]byte) error) {
	for name, b := range answers(f) {
		if name == seed {
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) { dec(b) })
}

func FuzzRangeResponse(f *testing.F) {
	fuzzDecoder(f, "range", func(b []byte) error {
		r, err := decodeRangeResponse(b)
		if err == nil {
			var o pb.RangeResponse
			if oerr := o.Unmarshal(b); oerr == nil && (len(o.Kvs) != len(r.Kvs) || o.More != r.More || o.Count != r.Count) {
				panic(fmt.Sprintf("decoded %+v, etcd decodes %v", r, &o))
			}
		}
		return err
	})
}

func FuzzTxnResponse(f *testing.F) {
	fuzzDecoder(f, "txn", func(b []byte) error { _, err := decodeTxnResponse(b, 0); return err })
}

func FuzzWatchResponse(f *testing.F) {
	fuzzDecoder(f, "watch", func(b []byte) error {
		wr, err := decodeWatchResponse(b)
		if err == nil {
			var o pb.WatchResponse
			if oerr := o.Unmarshal(b); oerr == nil && (len(o.Events) != len(wr.Events) || o.CompactRevision != wr.CompactRevision || o.Canceled != wr.Canceled) {
				panic(fmt.Sprintf("decoded %+v, etcd decodes %v", wr, &o))
			}
			_ = wr.Err()
		}
		return err
	})
}

func FuzzGrantResponse(f *testing.F) {
	fuzzDecoder(f, "grant", func(b []byte) error { _, err := decodeGrantResponse(b); return err })
}

func FuzzTimeToLiveResponse(f *testing.F) {
	fuzzDecoder(f, "ttl", func(b []byte) error { _, err := decodeTimeToLiveResponse(b); return err })
}

func FuzzKeepAliveResponse(f *testing.F) {
	fuzzDecoder(f, "keepalive", func(b []byte) error { _, err := decodeKeepAliveResponse(b); return err })
}

func FuzzAuthenticateResponse(f *testing.F) {
	fuzzDecoder(f, "authenticate", func(b []byte) error { _, err := decodeAuthenticateResponse(b); return err })
}

// FuzzMessage: the gRPC message framing never panics nor reads past its
// length.
func FuzzMessage(f *testing.F) {
	f.Add(frame([]byte("abc")))
	f.Add([]byte{1, 0, 0, 0, 1, 0})
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			m, err := readMessage(r)
			if err != nil {
				return
			}
			if len(m) > len(b) {
				t.Fatalf("message of %d bytes from %d", len(m), len(b))
			}
		}
	})
}
