package etcdv3

import (
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections to an etcd; cut breaks them all and
// refuses new ones (etcd unreachable from the client only), freeze stops
// forwarding while the connections stay open (a hung etcd, a black hole),
// heal lets them through again.
type proxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	frozen chan struct{} // closed while not frozen
	conns  map[net.Conn]bool
}

func newProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{l: l, target: target, conns: map[net.Conn]bool{}, frozen: make(chan struct{})}
	close(p.frozen)
	t.Cleanup(func() {
		l.Close()
		p.cut()
		select {
		case <-p.frozen:
		default:
			p.thaw()
		}
	})
	go p.serve()
	return p
}

func (p *proxy) addr() string { return p.l.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[u] = true, true
		p.mu.Unlock()
		go func() { p.copy(u, c); u.Close() }()
		go func() { p.copy(c, u); c.Close() }()
	}
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *proxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// copy copies from src to dst, holding each chunk while frozen.
func (p *proxy) copy(dst, src net.Conn) {
	b := make([]byte, 32<<10)
	for {
		n, err := src.Read(b)
		if n > 0 {
			p.mu.Lock()
			gate := p.frozen
			p.mu.Unlock()
			<-gate
			if _, werr := dst.Write(b[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = make(chan struct{})
	p.mu.Unlock()
}

func (p *proxy) thaw() {
	p.mu.Lock()
	close(p.frozen)
	p.mu.Unlock()
}
