package kubeapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// EventType is the type of a watch event.
type EventType string

// The types of watch events.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
	// Bookmark carries only a resourceVersion: the watch is at it.
	Bookmark EventType = "BOOKMARK"
	// Error carries a Status: the watch ends (410: its resourceVersion is
	// too old).
	Error EventType = "ERROR"
)

// Event is one event of a watch of Nodes: a Node (of a Bookmark, only its
// resourceVersion), or the Status of an Error.
type Event struct {
	Type   EventType
	Node   Node
	Status *StatusError
}

// wireEvent is a watch event as the server streams it; its object is a
// Node or, in an ERROR event, a Status.
type wireEvent struct {
	Type   EventType `json:"type"`
	Object struct {
		Node
		Kind    string `json:"kind"`
		Code    int    `json:"code"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"object"`
}

// errNoObject: an event of a Node without the Node's name.
var errNoObject = errors.New("kubeapi: watch event of a Node without a name")

// decodeEvent decodes the next event of a watch's stream: an error at
// its end (io.EOF when it ended between events) or for an event that is
// none (an unknown type, a Node without a name).
func decodeEvent(dec *json.Decoder, path string) (Event, error) {
	var w wireEvent
	if err := dec.Decode(&w); err != nil {
		return Event{}, err
	}
	ev := Event{Type: w.Type, Node: w.Object.Node}
	switch w.Type {
	case Added, Modified, Deleted:
		if ev.Node.Name == "" {
			return Event{}, errNoObject
		}
	case Bookmark:
	case Error:
		code := w.Object.Code
		if code == 0 {
			code = http.StatusInternalServerError
		}
		ev.Node = Node{}
		ev.Status = &StatusError{Method: http.MethodGet, Path: path + " (watch)", Code: code, Reason: w.Object.Reason, Message: w.Object.Message}
		if ev.Status.Reason == "" {
			ev.Status.Reason = reasonOf(code)
		}
	default:
		return Event{}, fmt.Errorf("kubeapi: watch event of unknown type %.40q", w.Type)
	}
	return ev, nil
}
