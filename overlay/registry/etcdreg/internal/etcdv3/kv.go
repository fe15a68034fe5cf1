package etcdv3

import (
	"context"
	"errors"
	"fmt"
)

// ResponseHeader is etcd's header of every response (rpc.proto).
type ResponseHeader struct {
	ClusterID uint64
	MemberID  uint64
	Revision  int64
	RaftTerm  uint64
}

// KeyValue is a key as etcd stores it (kv.proto). Key and Value share the
// memory of the response they came in.
type KeyValue struct {
	Key            []byte
	CreateRevision int64
	ModRevision    int64
	Version        int64
	Value          []byte
	Lease          int64
}

// GetResponse is the answer to Get (etcd's RangeResponse).
type GetResponse struct {
	Header *ResponseHeader
	Kvs    []*KeyValue
	More   bool  // more keys in the range than the limit let through
	Count  int64 // keys in the range
}

// PutResponse is the answer to Put.
type PutResponse struct{ Header *ResponseHeader }

// DeleteResponse is the answer to a delete in a transaction.
type DeleteResponse struct {
	Header  *ResponseHeader
	Deleted int64
}

// CompactResponse is the answer to Compact.
type CompactResponse struct{ Header *ResponseHeader }

// opKind is what an Op does.
type opKind uint8

const (
	opRange opKind = iota
	opPut
	opDelete
	opTxn
)

func (k opKind) String() string {
	switch k {
	case opRange:
		return "range"
	case opPut:
		return "put"
	case opDelete:
		return "delete"
	case opTxn:
		return "txn"
	}
	return fmt.Sprintf("opKind(%d)", uint8(k))
}

// Op is a request: a get, put or delete, or a nested transaction.
type Op struct {
	kind         opKind
	key, end     []byte
	value        []byte
	limit, rev   int64
	lease        LeaseID
	serializable bool
	cmps         []Cmp
	then, els    []Op
}

// OpOption modifies an Op.
type OpOption func(*Op)

// OpGet reads key (a range with WithPrefix or WithRange).
func OpGet(key string, opts ...OpOption) Op { return newOp(opRange, key, "", opts) }

// OpPut writes val to key.
func OpPut(key, val string, opts ...OpOption) Op { return newOp(opPut, key, val, opts) }

// OpDelete deletes key (a range with WithPrefix or WithRange).
func OpDelete(key string, opts ...OpOption) Op { return newOp(opDelete, key, "", opts) }

// OpTxn is a transaction nested in another.
func OpTxn(cmps []Cmp, then, els []Op) Op { return Op{kind: opTxn, cmps: cmps, then: then, els: els} }

func newOp(k opKind, key, val string, opts []OpOption) Op {
	op := Op{kind: k, key: []byte(key)}
	if k == opPut {
		op.value = []byte(val)
	}
	for _, o := range opts {
		o(&op)
	}
	return op
}

// WithPrefix makes the op cover every key starting with its key.
func WithPrefix() OpOption {
	return func(op *Op) {
		if len(op.key) == 0 {
			op.key, op.end = []byte{0}, []byte{0} // every key
			return
		}
		op.end = []byte(GetPrefixRangeEnd(string(op.key)))
	}
}

// WithRange makes the op cover the keys from its key up to end, excluded.
func WithRange(end string) OpOption { return func(op *Op) { op.end = []byte(end) } }

// WithLimit bounds how many keys a get returns (0: no limit).
func WithLimit(n int64) OpOption { return func(op *Op) { op.limit = n } }

// WithRev reads (or watches from) revision rev (0: the current one).
func WithRev(rev int64) OpOption { return func(op *Op) { op.rev = rev } }

// WithLease attaches a put's key to the lease id.
func WithLease(id LeaseID) OpOption { return func(op *Op) { op.lease = id } }

// WithSerializable answers a get from the member's own copy, without a
// round of consensus.
func WithSerializable() OpOption { return func(op *Op) { op.serializable = true } }

// GetPrefixRangeEnd returns the end of the range of keys starting with
// prefix: prefix with its last byte below 0xff incremented ("\x00", all
// keys, if there is none).
func GetPrefixRangeEnd(prefix string) string {
	end := []byte(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1])
		}
	}
	return "\x00"
}

// Get reads key, or a range of keys with WithPrefix or WithRange.
func (c *Client) Get(ctx context.Context, key string, opts ...OpOption) (*GetResponse, error) {
	op := OpGet(key, opts...)
	b, err := c.call(ctx, methodRange, op.appendRange(nil), callOpts{idempotent: true})
	if err != nil {
		return nil, err
	}
	return decodeRangeResponse(b)
}

// Put writes val to key.
func (c *Client) Put(ctx context.Context, key, val string, opts ...OpOption) (*PutResponse, error) {
	op := OpPut(key, val, opts...)
	b, err := c.call(ctx, methodPut, op.appendPut(nil), callOpts{})
	if err != nil {
		return nil, err
	}
	h, err := decodeHeaderOnly(b)
	if err != nil {
		return nil, fmt.Errorf("etcdv3: PutResponse: %w", err)
	}
	return &PutResponse{Header: h}, nil
}

// Compact discards the history before revision rev.
func (c *Client) Compact(ctx context.Context, rev int64) (*CompactResponse, error) {
	req := appendInt(nil, 1, rev)
	b, err := c.call(ctx, methodCompact, req, callOpts{})
	if err != nil {
		return nil, err
	}
	h, err := decodeHeaderOnly(b)
	if err != nil {
		return nil, fmt.Errorf("etcdv3: CompactionResponse: %w", err)
	}
	return &CompactResponse{Header: h}, nil
}

// appendRange encodes op as a RangeRequest.
func (op *Op) appendRange(b []byte) []byte {
	b = appendBytes(b, 1, op.key)
	b = appendBytes(b, 2, op.end)
	b = appendInt(b, 3, op.limit)
	b = appendInt(b, 4, op.rev)
	return appendBool(b, 7, op.serializable)
}

// appendPut encodes op as a PutRequest.
func (op *Op) appendPut(b []byte) []byte {
	b = appendBytes(b, 1, op.key)
	b = appendBytes(b, 2, op.value)
	return appendInt(b, 3, int64(op.lease))
}

// appendDelete encodes op as a DeleteRangeRequest.
func (op *Op) appendDelete(b []byte) []byte {
	b = appendBytes(b, 1, op.key)
	return appendBytes(b, 2, op.end)
}

func decodeHeader(b []byte) (*ResponseHeader, error) {
	h := &ResponseHeader{}
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			h.ClusterID = uint64(d.int64())
		case 2:
			h.MemberID = uint64(d.int64())
		case 3:
			h.Revision = d.int64()
		case 4:
			h.RaftTerm = uint64(d.int64())
		}
	}
	return h, d.err()
}

// header decodes the current field, a response's header (field 1).
func (d *decoder) header() *ResponseHeader {
	h, err := decodeHeader(d.bytes())
	d.check(err)
	return h
}

// decodeHeaderOnly decodes a response whose only field is its header.
func decodeHeaderOnly(b []byte) (*ResponseHeader, error) {
	h := &ResponseHeader{}
	d := decoder{b: b}
	for d.next() {
		if d.num == 1 {
			h = d.header()
		}
	}
	return h, d.err()
}

// decodeKeyValue decodes b into kv.
func decodeKeyValue(b []byte, kv *KeyValue) error {
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			kv.Key = d.bytes()
		case 2:
			kv.CreateRevision = d.int64()
		case 3:
			kv.ModRevision = d.int64()
		case 4:
			kv.Version = d.int64()
		case 5:
			kv.Value = d.bytes()
		case 6:
			kv.Lease = d.int64()
		}
	}
	return d.err()
}

func decodeRangeResponse(b []byte) (*GetResponse, error) {
	r := &GetResponse{Header: &ResponseHeader{}}
	// The keys in one block: two allocations per page, not one per key.
	n := count(b, 2)
	kvs := make([]KeyValue, n)
	r.Kvs = make([]*KeyValue, 0, n)
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			r.Header = d.header()
		case 2:
			if len(r.Kvs) == len(kvs) {
				d.check(errors.New("more keys than counted")) // cannot happen: same parse
				break
			}
			kv := &kvs[len(r.Kvs)]
			d.check(decodeKeyValue(d.bytes(), kv))
			r.Kvs = append(r.Kvs, kv)
		case 3:
			r.More = d.bool()
		case 4:
			r.Count = d.int64()
		}
	}
	if err := d.err(); err != nil {
		return nil, fmt.Errorf("etcdv3: RangeResponse: %w", err)
	}
	return r, nil
}

func decodeDeleteResponse(b []byte) (*DeleteResponse, error) {
	r := &DeleteResponse{Header: &ResponseHeader{}}
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			r.Header = d.header()
		case 2:
			r.Deleted = d.int64()
		}
	}
	if err := d.err(); err != nil {
		return nil, fmt.Errorf("etcdv3: DeleteRangeResponse: %w", err)
	}
	return r, nil
}
