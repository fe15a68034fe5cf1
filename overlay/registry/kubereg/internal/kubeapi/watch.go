package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/overlaynet/overlaynet/internal/backoff"
)

// NodesPath is the path of the Nodes.
const NodesPath = "/api/v1/nodes"

// NodeHandler receives what WatchNodes sees, from one goroutine.
type NodeHandler struct {
	// Event takes a Node added or changed, or deleted; a deleted Node
	// found missing by a relist carries only its name.
	Event func(n *Node, deleted bool)
	// Synced is called once, when the first list has been delivered.
	Synced func()
	// Error takes each failed list or watch, before the retry.
	Error func(err error)
	// Relist takes the reason for a relist: the watch's resourceVersion
	// is too old (410 Gone).
	Relist func(err error)
}

// reflector lists and watches the Nodes for a handler, as client-go's
// reflector does.
type reflector struct {
	c     *Client
	h     NodeHandler
	known map[string]struct{} // the Nodes delivered and not deleted
	rv    string              // the resourceVersion the Nodes are at
}

// WatchNodes delivers the Nodes to h until ctx ends: a paged list, then a
// watch from the list's resourceVersion; after a dropped watch, a watch
// from the last resourceVersion seen (so that no change is lost), with a
// capped exponential backoff while it fails; a relist when that
// resourceVersion is too old, delivering as deleted the Nodes it no longer
// holds. No request is sent while the watch is up but for its renewal
// every 5 to 10 minutes.
func (c *Client) WatchNodes(ctx context.Context, h NodeHandler) {
	r := &reflector{c: c, h: h, known: map[string]struct{}{}}
	b := backoff.Backoff{Min: c.backoffMin, Max: c.backoffMax, Factor: 2, Low: 0.5, High: 1}
	listed, synced := false, false
	for ctx.Err() == nil {
		if !listed {
			if err := r.list(ctx); err != nil {
				if ctx.Err() == nil {
					h.Error(err)
					b.Wait(ctx)
				}
				continue
			}
			listed = true
			b.Reset()
			if !synced {
				synced = true
				h.Synced()
			}
		}
		up, err := r.watch(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case IsGone(err):
			listed = false
			if h.Relist != nil {
				h.Relist(err)
			}
		case err != nil:
			h.Error(err)
			if up {
				b.Reset()
			}
			b.Wait(ctx)
		}
	}
}

// listPage is the number of Nodes a page of a list holds.
const listPage = 500

// list lists the Nodes page by page, delivering each Node, then a delete
// of each known one the list does not hold, and sets the
// resourceVersion. An expired continue token starts the list over.
func (r *reflector) list(ctx context.Context) error {
	seen := map[string]struct{}{}
	q := url.Values{"limit": {strconv.Itoa(listPage)}}
	for restarts := 0; ; {
		var page nodeList
		err := r.c.Get(ctx, NodesPath, q, &page)
		if err != nil && q.Has("continue") && IsGone(err) && restarts < 3 {
			restarts++
			q.Del("continue")
			clear(seen)
			continue
		}
		if err != nil {
			return err
		}
		for i := range page.Items {
			n := &page.Items[i]
			seen[n.Name] = struct{}{}
			r.known[n.Name] = struct{}{}
			r.h.Event(n, false)
		}
		if page.Metadata.Continue == "" {
			r.rv = page.Metadata.ResourceVersion
			break
		}
		q.Set("continue", page.Metadata.Continue)
	}
	for name := range r.known {
		if _, ok := seen[name]; !ok {
			delete(r.known, name)
			r.h.Event(&Node{ObjectMeta: ObjectMeta{Name: name}}, true)
		}
	}
	return nil
}

// watch watches the Nodes from the resourceVersion until the server ends
// the watch (nil), the connection fails, or an ERROR event comes (its
// Status); up says whether the watch got going (an answer, an event).
func (r *reflector) watch(ctx context.Context) (up bool, err error) {
	timeout := 300 + rand.IntN(300) // seconds, as client-go's reflector: the API servers' watches end apart
	q := url.Values{"watch": {"1"}, "resourceVersion": {r.rv}, "allowWatchBookmarks": {"true"},
		"timeoutSeconds": {strconv.Itoa(timeout)}}
	// Past the server's timeout, the connection is dead whatever it says.
	wctx, cancel := context.WithTimeout(ctx, time.Duration(timeout)*time.Second+time.Minute)
	defer cancel()
	began := time.Now()
	resp, err := r.c.do(wctx, http.MethodGet, NodesPath, q, "", nil)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	events := 0
	for {
		ev, err := decodeEvent(dec, NodesPath)
		switch {
		case errors.Is(err, io.EOF) && (events > 0 || time.Since(began) >= time.Second):
			return true, nil // the server's timeout
		case errors.Is(err, io.EOF):
			return false, errors.New("kubeapi: the watch of Nodes ended at once")
		case err != nil:
			return events > 0, fmt.Errorf("kubeapi: watch of Nodes: %w", err)
		}
		events++
		switch ev.Type {
		case Error:
			return true, ev.Status
		case Added, Modified:
			r.known[ev.Node.Name] = struct{}{}
			r.h.Event(&ev.Node, false)
		case Deleted:
			delete(r.known, ev.Node.Name)
			r.h.Event(&ev.Node, true)
		}
		if ev.Node.ResourceVersion != "" {
			r.rv = ev.Node.ResourceVersion
		}
	}
}
