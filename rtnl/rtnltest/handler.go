package rtnltest

import (
	"fmt"
	"sync"
)

// AckAll answers every request with success and no data: ACKs where asked
// for, empty dumps.
func AckAll(Request) ([]Message, error) { return nil, nil }

// Script answers the i-th request with the i-th Handler, and fails a request
// beyond the last (as a transport error, so the test sees it) naming it.
func Script(hs ...Handler) Handler {
	var (
		mu sync.Mutex
		n  int
	)
	return func(req Request) ([]Message, error) {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		if i >= len(hs) {
			return nil, fmt.Errorf("rtnltest: unscripted request #%d: %v", i, req)
		}
		return hs[i](req)
	}
}

// Fail answers with the error err (a syscall.Errno or an *Error) and no data.
func Fail(err error) Handler {
	return func(Request) ([]Message, error) { return nil, err }
}

// Messages answers with msgs and success: the parts of a dump, or the reply
// to a get.
func Messages(msgs ...Message) Handler {
	return func(Request) ([]Message, error) { return msgs, nil }
}
