package rtnl

// Internals the external tests (package rtnl_test) exercise directly.

// ClassifyPayload classifies a message given as its decoded header and
// payload, as Classify does for the whole message.
func ClassifyPayload(h Header, data []byte, ev *Event) (ok bool, err error) {
	return classify(h.Type, h.Flags, h.PID, data, ev)
}

var (
	DecodeMiss  = decodeMiss
	ParseHeader = parseHeader
)
