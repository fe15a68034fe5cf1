package etcdv3

import (
	"context"
	"fmt"
)

// CompareTarget is what a Cmp compares (rpc.proto Compare.CompareTarget).
type CompareTarget uint8

// The targets etcdreg compares.
const (
	targetVersion CompareTarget = 0
	targetCreate  CompareTarget = 1
	targetMod     CompareTarget = 2
	targetValue   CompareTarget = 3
)

func (t CompareTarget) String() string {
	switch t {
	case targetVersion:
		return "version"
	case targetCreate:
		return "create-revision"
	case targetMod:
		return "mod-revision"
	case targetValue:
		return "value"
	}
	return fmt.Sprintf("CompareTarget(%d)", uint8(t))
}

// CompareResult is a Cmp's relation (rpc.proto Compare.CompareResult).
type CompareResult uint8

// The relations.
const (
	resultEqual    CompareResult = 0
	resultGreater  CompareResult = 1
	resultLess     CompareResult = 2
	resultNotEqual CompareResult = 3
)

func (r CompareResult) String() string {
	switch r {
	case resultEqual:
		return "="
	case resultGreater:
		return ">"
	case resultLess:
		return "<"
	case resultNotEqual:
		return "!="
	}
	return fmt.Sprintf("CompareResult(%d)", uint8(r))
}

// Cmp is a condition of a transaction.
type Cmp struct {
	target CompareTarget
	result CompareResult
	key    []byte
	n      int64  // a revision or version
	value  []byte // targetValue
}

// Value compares key's value (Compare with a string).
func Value(key string) Cmp { return Cmp{target: targetValue, key: []byte(key)} }

// CreateRevision compares the revision key was created at (0: absent).
func CreateRevision(key string) Cmp { return Cmp{target: targetCreate, key: []byte(key)} }

// ModRevision compares the revision key was last changed at.
func ModRevision(key string) Cmp { return Cmp{target: targetMod, key: []byte(key)} }

// Compare completes cmp with a relation ("=", "!=", ">", "<") and the value
// to compare with: a string for Value, an integer otherwise. Anything else
// is a programming error and panics, as in etcd's client.
func Compare(cmp Cmp, result string, v any) Cmp {
	switch result {
	case "=":
		cmp.result = resultEqual
	case "!=":
		cmp.result = resultNotEqual
	case ">":
		cmp.result = resultGreater
	case "<":
		cmp.result = resultLess
	default:
		panic("etcdv3: unknown comparison " + result)
	}
	_, isString := v.(string)
	if isString != (cmp.target == targetValue) {
		panic(fmt.Sprintf("etcdv3: %s compared with a %T", cmp.target, v))
	}
	switch x := v.(type) {
	case string:
		cmp.value = []byte(x)
	case int:
		cmp.n = int64(x)
	case int64:
		cmp.n = x
	case LeaseID:
		cmp.n = int64(x)
	default:
		panic(fmt.Sprintf("etcdv3: cannot compare with %T", v))
	}
	return cmp
}

func (c *Cmp) append(b []byte) []byte {
	b = appendInt(b, 1, int64(c.result))
	b = appendInt(b, 2, int64(c.target))
	b = appendBytes(b, 3, c.key)
	// The target_union oneof is present even when zero.
	switch c.target {
	case targetVersion, targetCreate, targetMod:
		b = appendTag(b, 4+int(c.target), wireVarint)
		b = appendVarint(b, uint64(c.n))
	case targetValue:
		b = appendTag(b, 7, wireBytes)
		b = appendVarint(b, uint64(len(c.value)))
		b = append(b, c.value...)
	}
	return b
}

// Txn is a transaction being built: If, Then and Else, then Commit.
type Txn struct {
	c         *Client
	ctx       context.Context
	cmps      []Cmp
	then, els []Op
}

// TxnResponse is the answer to a transaction.
type TxnResponse struct {
	Header    *ResponseHeader
	Succeeded bool // the conditions held: Then ran, not Else
	Responses []*ResponseOp
}

// ResponseOp is the answer to one op of a transaction; one field is set.
type ResponseOp struct {
	Range  *GetResponse
	Put    *PutResponse
	Delete *DeleteResponse
	Txn    *TxnResponse
}

// GetResponseRange returns the answer to a get, nil for another op.
func (r *ResponseOp) GetResponseRange() *GetResponse {
	if r == nil {
		return nil
	}
	return r.Range
}

// Txn starts a transaction under ctx.
func (c *Client) Txn(ctx context.Context) *Txn { return &Txn{c: c, ctx: ctx} }

// If adds conditions; all must hold for Then to run.
func (t *Txn) If(cmps ...Cmp) *Txn { t.cmps = append(t.cmps, cmps...); return t }

// Then adds the ops run when the conditions hold.
func (t *Txn) Then(ops ...Op) *Txn { t.then = append(t.then, ops...); return t }

// Else adds the ops run when they do not.
func (t *Txn) Else(ops ...Op) *Txn { t.els = append(t.els, ops...); return t }

// Commit sends the transaction.
func (t *Txn) Commit() (*TxnResponse, error) {
	req := appendTxn(nil, t.cmps, t.then, t.els)
	b, err := t.c.call(t.ctx, methodTxn, req, callOpts{})
	if err != nil {
		return nil, err
	}
	r, err := decodeTxnResponse(b, 0)
	if err != nil {
		return nil, fmt.Errorf("etcdv3: TxnResponse: %w", err)
	}
	return r, nil
}

// appendTxn encodes a TxnRequest.
func appendTxn(b []byte, cmps []Cmp, then, els []Op) []byte {
	for i := range cmps {
		b = appendMessage(b, 1, cmps[i].append)
	}
	for i := range then {
		b = appendMessage(b, 2, then[i].appendRequestOp)
	}
	for i := range els {
		b = appendMessage(b, 3, els[i].appendRequestOp)
	}
	return b
}

// appendRequestOp encodes op as a RequestOp.
func (op *Op) appendRequestOp(b []byte) []byte {
	switch op.kind {
	case opRange:
		return appendMessage(b, 1, op.appendRange)
	case opPut:
		return appendMessage(b, 2, op.appendPut)
	case opDelete:
		return appendMessage(b, 3, op.appendDelete)
	default:
		return appendMessage(b, 4, func(b []byte) []byte { return appendTxn(b, op.cmps, op.then, op.els) })
	}
}

// maxTxnDepth bounds the nesting of transactions in a response (etcd's
// own limit is far below).
const maxTxnDepth = 16

func decodeTxnResponse(b []byte, depth int) (*TxnResponse, error) {
	if depth > maxTxnDepth {
		return nil, fmt.Errorf("transactions nested over %d deep", maxTxnDepth)
	}
	r := &TxnResponse{Header: &ResponseHeader{}}
	d := decoder{b: b}
	for d.next() {
		switch d.num {
		case 1:
			r.Header = d.header()
		case 2:
			r.Succeeded = d.bool()
		case 3:
			op, err := decodeResponseOp(d.bytes(), depth)
			d.check(err)
			r.Responses = append(r.Responses, op)
		}
	}
	return r, d.err()
}

func decodeResponseOp(b []byte, depth int) (*ResponseOp, error) {
	op := &ResponseOp{}
	d := decoder{b: b}
	for d.next() {
		var err error
		switch d.num {
		case 1:
			op.Range, err = decodeRangeResponse(d.bytes())
		case 2:
			var h *ResponseHeader
			h, err = decodeHeaderOnly(d.bytes())
			op.Put = &PutResponse{Header: h}
		case 3:
			op.Delete, err = decodeDeleteResponse(d.bytes())
		case 4:
			op.Txn, err = decodeTxnResponse(d.bytes(), depth+1)
		}
		d.check(err)
	}
	return op, d.err()
}
