package kubeapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// PatchType is a PATCH request's content type.
type PatchType string

// The patches overlaynet sends.
const (
	// MergePatch is a JSON merge patch (RFC 7386).
	MergePatch PatchType = "application/merge-patch+json"
	// StrategicMergePatch is Kubernetes' strategic merge patch (lists
	// merged by key, such as a Node's conditions by type).
	StrategicMergePatch PatchType = "application/strategic-merge-patch+json"
)

const jsonType = "application/json"

// Client sends requests to one API server, with one http.Client.
type Client struct {
	base      *url.URL
	hc        *http.Client
	userAgent string
	auth      auth
	// backoff bounds the waits between failed lists and watches.
	backoffMin, backoffMax time.Duration
}

// New returns a Client of the API server cfg names, sending userAgent.
func New(cfg Config, userAgent string) (*Client, error) {
	if cfg.Server == nil {
		return nil, fmt.Errorf("kubeapi: %s: no server", cfg.Source)
	}
	return &Client{base: cfg.Server, hc: &http.Client{Transport: transport(cfg)}, userAgent: userAgent,
		auth: newAuth(cfg), backoffMin: 800 * time.Millisecond, backoffMax: 30 * time.Second}, nil
}

// Get reads the object at path (/api/v1/..., /apis/GROUP/VERSION/...) with
// query, decoding its JSON into out.
func (c *Client) Get(ctx context.Context, path string, query url.Values, out any) error {
	resp, err := c.do(ctx, http.MethodGet, path, query, "", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("kubeapi: GET %s: the answer: %w", path, err)
	}
	return nil
}

// Patch applies the patch body of type pt to the object at path.
func (c *Client) Patch(ctx context.Context, path string, pt PatchType, body []byte) error {
	resp, err := c.do(ctx, http.MethodPatch, path, nil, string(pt), body)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.Body.Close()
}

// do sends a request and returns the answer of success, whose body the
// caller closes; an answer of failure is a *StatusError.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, contentType string, body []byte) (*http.Response, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: %w", err)
	}
	req.Header.Set("Accept", jsonType)
	req.Header.Set("User-Agent", c.userAgent)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	c.auth.set(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubeapi: %w", err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return nil, statusError(method, path, resp.StatusCode, b)
}
