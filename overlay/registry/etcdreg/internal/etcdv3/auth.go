package etcdv3

import (
	"context"
	"fmt"
)

// authenticate gets a token for the configured user (Auth/Authenticate),
// which every call sends from then on (the token header).
func (c *Client) authenticate(ctx context.Context) error {
	req := appendString(appendString(nil, 1, c.cfg.Username), 2, c.cfg.Password)
	b, err := c.call(ctx, methodAuthenticate, req, callOpts{idempotent: true, noToken: true})
	if err != nil {
		return fmt.Errorf("etcdv3: authenticate as %q: %w", c.cfg.Username, err)
	}
	tok, err := decodeAuthenticateResponse(b)
	if err != nil {
		return err
	}
	c.token.Store(&tok)
	return nil
}

func decodeAuthenticateResponse(b []byte) (string, error) {
	var tok string
	d := decoder{b: b}
	for d.next() {
		if d.num == 2 {
			tok = string(d.bytes())
		}
	}
	if err := d.err(); err != nil {
		return "", fmt.Errorf("etcdv3: AuthenticateResponse: %w", err)
	}
	return tok, nil
}
