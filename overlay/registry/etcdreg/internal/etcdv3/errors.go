package etcdv3

import (
	"context"
	"errors"
	"fmt"
	"strconv"
)

// Code is a gRPC status code.
type Code uint32

// The gRPC status codes etcd answers with.
const (
	OK                 Code = 0
	Canceled           Code = 1
	Unknown            Code = 2
	InvalidArgument    Code = 3
	DeadlineExceeded   Code = 4
	NotFound           Code = 5
	AlreadyExists      Code = 6
	PermissionDenied   Code = 7
	ResourceExhausted  Code = 8
	FailedPrecondition Code = 9
	Aborted            Code = 10
	OutOfRange         Code = 11
	Unimplemented      Code = 12
	Internal           Code = 13
	Unavailable        Code = 14
	DataLoss           Code = 15
	Unauthenticated    Code = 16
)

func (c Code) String() string {
	names := [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
		"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
		"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}
	if int(c) < len(names) {
		return names[c]
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// Error is a status etcd answered a call with. It is the same error
// (errors.Is) as one of the sentinels below with its message: etcd tells
// its errors apart by message ("etcdserver: mvcc: required revision has
// been compacted").
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("etcdv3: %s: %s", e.Code, e.Message)
}

// Is reports whether target is an error with e's message.
func (e *Error) Is(target error) bool {
	if t, ok := target.(*Error); ok {
		return t.Message == e.Message
	}
	return target != nil && target.Error() == e.Message
}

// The etcd errors etcdreg tells apart (etcd's api/v3rpc/rpctypes), each
// the message of an Error.
var (
	ErrCompacted                  = errors.New("etcdserver: mvcc: required revision has been compacted")
	ErrFutureRev                  = errors.New("etcdserver: mvcc: required revision is a future revision")
	ErrLeaseNotFound              = errors.New("etcdserver: requested lease not found")
	ErrNoLeader                   = errors.New("etcdserver: no leader")
	ErrTimeout                    = errors.New("etcdserver: request timed out")
	ErrTimeoutDueToLeaderFail     = errors.New("etcdserver: request timed out, possibly due to previous leader failure")
	ErrTimeoutDueToConnectionLost = errors.New("etcdserver: request timed out, possibly due to connection lost")
	ErrInvalidAuthToken           = errors.New("etcdserver: invalid auth token")
	ErrAuthOldRevision            = errors.New("etcdserver: revision of auth store is old")
	ErrAuthFailed                 = errors.New("etcdserver: authentication failed, invalid user ID or password")
)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("etcdv3: client closed")

// ConnError is a failure to reach an endpoint: the connection could not be
// made (refused, timed out, TLS handshake) or broke, or the endpoint does
// not speak gRPC over HTTP/2.
type ConnError struct {
	Endpoint string
	// Unsent says the request never left: it can be sent elsewhere,
	// whatever it does.
	Unsent bool
	Err    error
}

func (e *ConnError) Error() string {
	return "etcdv3: connection error: " + e.Endpoint + ": " + e.Err.Error()
}

func (e *ConnError) Unwrap() error { return e.Err }

// dialError marks an error of the dialer (TCP or TLS): the request it was
// for was not sent.
type dialError struct{ err error }

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// IsUnavailable reports whether err means that etcd did not answer: no
// endpoint reachable, no leader, a timeout, or the context's deadline.
func IsUnavailable(err error) bool {
	var ce *ConnError
	var se *Error
	switch {
	case errors.As(err, &ce), errors.Is(err, context.DeadlineExceeded), errors.Is(err, ErrNoLeader),
		errors.Is(err, ErrTimeout), errors.Is(err, ErrTimeoutDueToLeaderFail), errors.Is(err, ErrTimeoutDueToConnectionLost):
		return true
	case errors.As(err, &se):
		return se.Code == Unavailable || se.Code == DeadlineExceeded
	}
	return false
}

// retryable reports whether a call that failed with err may be sent again
// (to the next endpoint): always when it was not sent, and when the call
// changes nothing (reads, keep-alives, watches) after any failure to reach
// etcd or an answer that etcd cannot serve now.
func retryable(err error, idempotent bool) bool {
	var ce *ConnError
	if errors.As(err, &ce) {
		return ce.Unsent || idempotent
	}
	var se *Error
	return idempotent && errors.As(err, &se) && se.Code == Unavailable
}

// authRejected reports whether err asks for a new token.
func authRejected(err error) bool {
	return errors.Is(err, ErrInvalidAuthToken) || errors.Is(err, ErrAuthOldRevision)
}
