package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// StatusError is the API server's answer of failure: its Status (code,
// reason, message), or the HTTP status of an answer that was none.
type StatusError struct {
	// Method and Path are the request's.
	Method, Path string
	// Code is the HTTP status code (a Status's code).
	Code int
	// Reason is the Status's reason (NotFound, Forbidden, Expired, ...).
	Reason string
	// Message is the Status's message, or the start of another body.
	Message string
}

// Error says the request, the code, the reason and the message.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("kubeapi: %s %s: %d %s", e.Method, e.Path, e.Code, e.Reason)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// maxErrorBody bounds what is read of an answer of failure.
const maxErrorBody = 64 << 10

// statusError makes the error of an answer with HTTP status code and
// body: the Status in it, else the body's start as the message.
func statusError(method, path string, code int, body []byte) *StatusError {
	e := &StatusError{Method: method, Path: path, Code: code}
	var st struct {
		Kind    string `json:"kind"`
		Code    int    `json:"code"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		e.Reason, e.Message = st.Reason, st.Message
		if st.Code != 0 {
			e.Code = st.Code
		}
	} else {
		e.Message = string(body[:min(len(body), 256)])
	}
	if e.Reason == "" {
		e.Reason = reasonOf(e.Code)
	}
	return e
}

// reasonOf names the reason the API server gives with code.
func reasonOf(code int) string {
	switch code {
	case http.StatusUnauthorized:
		return "Unauthorized"
	case http.StatusForbidden:
		return "Forbidden"
	case http.StatusNotFound:
		return "NotFound"
	case http.StatusConflict:
		return "Conflict"
	case http.StatusGone:
		return "Expired"
	case http.StatusTooManyRequests:
		return "TooManyRequests"
	case http.StatusInternalServerError:
		return "InternalError"
	case http.StatusServiceUnavailable:
		return "ServiceUnavailable"
	case http.StatusGatewayTimeout:
		return "Timeout"
	}
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Unknown"
}

// code returns the HTTP status code of err's StatusError, or 0.
func code(err error) int {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// IsNotFound says whether err is the server's 404 (NotFound).
func IsNotFound(err error) bool { return code(err) == http.StatusNotFound }

// IsUnauthorized says whether err is the server's 401: the credentials
// were not accepted.
func IsUnauthorized(err error) bool { return code(err) == http.StatusUnauthorized }

// IsForbidden says whether err is the server's 403: the credentials are
// not allowed the request.
func IsForbidden(err error) bool { return code(err) == http.StatusForbidden }

// IsGone says whether err is the server's 410 (Expired, Gone): a
// resourceVersion or continue token too old.
func IsGone(err error) bool { return code(err) == http.StatusGone }

// Temporary says whether err is the server's being unavailable: no
// answer (a connection error, a timeout, a broken body), an answer of
// overload (429) or a server error (5xx). Another answer of failure is the
// request's fault, or the credentials'.
func Temporary(err error) bool {
	c := code(err)
	return c == 0 || c == http.StatusTooManyRequests || c >= 500
}
