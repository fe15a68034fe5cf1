// Package backoff owns the waits between rounds of failed attempts of the
// store clients (etcd's, the Kubernetes API server's): capped exponential
// delays, each jittered, started over after a success.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential backoff. Its zero value is not usable:
// give Min, Max and Factor; Low and High bound each wait's jitter as a
// multiple of the current delay (0.8 and 1.2: ±20 %).
type Backoff struct {
	Min, Max  time.Duration
	Factor    float64 // the growth of the delay after each wait
	Low, High float64 // each wait is the delay times a random value in [Low, High)

	cur time.Duration // the current delay; Min when unset
}

// Next returns the next wait and grows the delay up to Max.
func (b *Backoff) Next() time.Duration {
	if b.cur < b.Min {
		b.cur = b.Min
	}
	d := time.Duration(float64(b.cur) * (b.Low + (b.High-b.Low)*rand.Float64()))
	b.cur = min(time.Duration(float64(b.cur)*b.Factor), b.Max)
	return d
}

// Wait sleeps the next wait, or returns ctx's error when ctx ends first.
func (b *Backoff) Wait(ctx context.Context) error {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reset starts the delays over from Min.
func (b *Backoff) Reset() { b.cur = b.Min }
