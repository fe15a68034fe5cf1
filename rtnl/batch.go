package rtnl

import (
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Batch collects requests to send together: Conn.ExecuteBatch packs as many
// as fit into each sendmsg and matches every ACK to its request. A Batch can
// be reset and reused without allocating.
type Batch struct {
	buf  []byte
	reqs []batchReq
}

type batchReq struct {
	off int // offset of the header in buf
	typ uint16
}

// Add appends a request of type typ with NLM_F_REQUEST|flags and payload
// body (copied). ExecuteBatch decides which requests ask for an ACK.
func (b *Batch) Add(typ, flags uint16, body []byte) {
	off := b.begin(typ, flags)
	b.buf = append(b.buf, body...)
	b.finish(off)
}

// AddMessage appends a request whose payload is m's binary encoding.
func (b *Batch) AddMessage(typ, flags uint16, m encoding.BinaryAppender) error {
	off := b.begin(typ, flags)
	var err error
	b.buf, err = m.AppendBinary(b.buf)
	return b.end(off, err)
}

// addNeigh appends a request whose payload is m's encoding. Unlike
// AddMessage with m, it keeps m off the heap: a message built on the
// caller's stack stays there.
func (b *Batch) addNeigh(typ, flags uint16, m *NeighMessage) error {
	off := b.begin(typ, flags)
	var err error
	b.buf, err = m.AppendBinary(b.buf)
	return b.end(off, err)
}

func (b *Batch) begin(typ, flags uint16) int {
	off := len(b.buf)
	b.buf = AppendHeader(b.buf, Header{Type: typ, Flags: flags | FlagRequest | FlagAck})
	b.reqs = append(b.reqs, batchReq{off: off, typ: typ})
	return off
}

// end finishes the request begun at off, or takes it back if its payload
// failed to encode.
func (b *Batch) end(off int, err error) error {
	if err != nil {
		b.buf = b.buf[:off]
		b.reqs = b.reqs[:len(b.reqs)-1]
		return err
	}
	b.finish(off)
	return nil
}

func (b *Batch) finish(off int) {
	for len(b.buf)%4 != 0 {
		b.buf = append(b.buf, 0)
	}
	binary.NativeEndian.PutUint32(b.buf[off:], uint32(len(b.buf)-off))
}

// Len returns the number of requests in the batch.
func (b *Batch) Len() int { return len(b.reqs) }

// Reset empties the batch, keeping its memory.
func (b *Batch) Reset() {
	b.buf = b.buf[:0]
	b.reqs = b.reqs[:0]
}

// BatchFailure is one failed request of a batch.
type BatchFailure struct {
	Index int   // position of the request in the batch
	Err   error // usually an *OpError
}

// BatchError lists the requests of a batch that failed; the others were
// applied.
type BatchError struct {
	Total    int
	Failures []BatchFailure
}

// Error summarises the failures, naming the first few.
func (e *BatchError) Error() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "rtnl: %d of %d batched requests failed", len(e.Failures), e.Total)
	for i, f := range e.Failures {
		if i == 3 {
			fmt.Fprintf(&sb, "; ...")
			break
		}
		fmt.Fprintf(&sb, "; #%d: %v", f.Index, f.Err)
	}
	return sb.String()
}

// Unwrap returns the failures' errors, so errors.Is(err, syscall.EEXIST) holds
// when any request failed with EEXIST.
func (e *BatchError) Unwrap() []error {
	errs := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		errs[i] = f.Err
	}
	return errs
}

// ExecuteBatch sends every request of b and waits until the kernel has
// processed them all. The requests are packed into as few sendmsg calls as
// the socket's send buffer and the room for error replies in its receive
// buffer allow. The kernel applies each request on its own, in order: it
// returns nil when all succeeded, a *BatchError naming the failed ones
// otherwise (the rest are applied), or another error if the socket failed
// (then the outcome of the requests of the unfinished sendmsg is unknown).
//
// Only the last request of each sendmsg carries NLM_F_ACK: the kernel
// reports a failed request whether or not it asked for an ACK, and it
// processes the requests of one sendmsg in order, so the last one's ACK
// arrives after every earlier failure. A success costs no reply, which is
// most of the cost of a batch of small requests (one skb and one recvmsg per
// ACK).
func (c *Conn) ExecuteBatch(b *Batch) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errClosed
	}
	maxBytes := c.sndbuf - 32
	maxReqs := c.rcvbuf / ackTruesize
	if maxReqs < 1 {
		maxReqs = 1
	}
	var failures []BatchFailure
	for start := 0; start < len(b.reqs); {
		// Take requests while they fit.
		end := start
		for end < len(b.reqs) && end-start < maxReqs {
			next := len(b.buf)
			if end+1 < len(b.reqs) {
				next = b.reqs[end+1].off
			}
			if next-b.reqs[start].off > maxBytes && end > start {
				break
			}
			end++
		}
		firstSeq := c.seq + 1
		for i := start; i < end; i++ {
			c.seq++
			h := b.buf[b.reqs[i].off:]
			flags := binary.NativeEndian.Uint16(h[6:]) &^ FlagAck
			if i == end-1 {
				flags |= FlagAck
			}
			binary.NativeEndian.PutUint16(h[6:], flags)
			binary.NativeEndian.PutUint32(h[8:], c.seq)
			binary.NativeEndian.PutUint32(h[12:], c.pid)
		}
		stop := len(b.buf)
		if end < len(b.reqs) {
			stop = b.reqs[end].off
		}
		if err := c.send(b.buf[b.reqs[start].off:stop]); err != nil {
			return err
		}
		last := uint32(end - start - 1)
		for acked := false; !acked; {
			it, err := c.recv()
			if err != nil {
				return err
			}
			for it.Next() {
				m := it.Message()
				if m.Header.Type != MsgError {
					continue
				}
				rel := m.Header.Sequence - firstSeq // wraps safely
				if rel > last {
					continue
				}
				if rel == last {
					acked = true
				}
				if _, err := parseAck(m.Header, m.Data); err != nil {
					idx := start + int(rel)
					var oe *OpError
					if errors.As(err, &oe) {
						oe.Op = MessageTypeName(b.reqs[idx].typ)
					}
					failures = append(failures, BatchFailure{Index: idx, Err: err})
				}
			}
			if err := it.Err(); err != nil {
				return &OpError{Op: "batch", Err: err}
			}
		}
		start = end
	}
	if len(failures) > 0 {
		return &BatchError{Total: len(b.reqs), Failures: failures}
	}
	return nil
}
