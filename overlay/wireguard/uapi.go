package wireguard

import (
	"bufio"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// UAPIDir is where userspace WireGuard keeps its devices' UAPI sockets,
// NAME.sock: one directory for every network namespace of the machine, so
// that two devices of one name, even in different namespaces, take over
// each other's socket.
const UAPIDir = "/var/run/wireguard"

// UAPISocket returns the UAPI socket of the userspace device name.
func UAPISocket(name string) string { return filepath.Join(UAPIDir, name+".sock") }

// UAPI is the Client of userspace devices: the UAPI protocol of
// wireguard-go (key=value lines, get=1 and set=1) over each device's unix
// socket in Dir.
type UAPI struct {
	// Dir is the sockets' directory (UAPIDir when empty).
	Dir string
	// Timeout bounds one exchange (5 s when zero).
	Timeout time.Duration
}

var _ Client = (*UAPI)(nil)

func (u *UAPI) dial(name string) (net.Conn, error) {
	dir, timeout := u.Dir, u.Timeout
	if dir == "" {
		dir = UAPIDir
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	c, err := net.DialTimeout("unix", filepath.Join(dir, name+".sock"), timeout)
	if err != nil {
		return nil, fmt.Errorf("wireguard: device %s: UAPI socket: %w", name, err)
	}
	c.SetDeadline(time.Now().Add(timeout))
	return c, nil
}

// Device asks the device for its configuration (get=1).
func (u *UAPI) Device(name string) (*Device, error) {
	c, err := u.dial(name)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, "get=1\n\n"); err != nil {
		return nil, fmt.Errorf("wireguard: device %s: UAPI: %w", name, err)
	}
	d, err := parseUAPIGet(bufio.NewReader(c))
	if err != nil {
		return nil, fmt.Errorf("wireguard: device %s: %w", name, err)
	}
	d.Name = name
	return d, nil
}

// Configure sends c to the device (set=1).
func (u *UAPI) Configure(name string, c Config) error {
	conn, err := u.dial(name)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, encodeUAPISet(c)); err != nil {
		return fmt.Errorf("wireguard: device %s: UAPI: %w", name, err)
	}
	if err := readUAPIErrno(bufio.NewReader(conn)); err != nil {
		return fmt.Errorf("wireguard: device %s: configure: %w", name, err)
	}
	return nil
}

// Close does nothing: each call dials its own connection.
func (u *UAPI) Close() error { return nil }

// encodeUAPISet is c as a set=1 request, ending with its empty line.
func encodeUAPISet(c Config) string {
	var b strings.Builder
	b.WriteString("set=1\n")
	if c.PrivateKey != nil {
		b.WriteString("private_key=" + hex.EncodeToString(c.PrivateKey.b[:]) + "\n")
	}
	if c.ListenPort != 0 {
		b.WriteString("listen_port=" + strconv.Itoa(int(c.ListenPort)) + "\n")
	}
	if c.ReplacePeers {
		b.WriteString("replace_peers=true\n")
	}
	for _, p := range c.Peers {
		b.WriteString("public_key=" + hex.EncodeToString(p.PublicKey[:]) + "\n")
		if p.Remove {
			b.WriteString("remove=true\n")
			continue
		}
		if p.UpdateOnly {
			b.WriteString("update_only=true\n")
		}
		if p.Endpoint.IsValid() {
			b.WriteString("endpoint=" + p.Endpoint.String() + "\n")
		}
		if p.Keepalive > 0 {
			b.WriteString("persistent_keepalive_interval=" + strconv.Itoa(int(p.Keepalive/time.Second)) + "\n")
		}
		if p.ReplaceAllowedIPs {
			b.WriteString("replace_allowed_ips=true\n")
		}
		for _, a := range p.AllowedIPs {
			b.WriteString("allowed_ip=" + a.String() + "\n")
		}
	}
	b.WriteString("\n")
	return b.String()
}

// maxUAPILines bounds a get reply (a device of 100,000 peers stays under).
const maxUAPILines = 4 << 20

// parseUAPIGet reads a get=1 reply up to its empty line. Unknown keys are
// skipped (newer versions add some); a line that is no key=value, a value
// that does not parse or an errno other than 0 is an error. The device's
// public key is derived from its private key.
func parseUAPIGet(r *bufio.Reader) (*Device, error) {
	d := &Device{}
	var p *Peer
	var hsSec, hsNsec int64
	endPeer := func() {
		if p != nil && (hsSec != 0 || hsNsec != 0) {
			p.LastHandshake = time.Unix(hsSec, hsNsec)
		}
		hsSec, hsNsec = 0, 0
	}
	for n := 0; ; n++ {
		if n > maxUAPILines {
			return nil, errors.New("UAPI reply too long")
		}
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("UAPI reply cut short: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("UAPI reply line %d is no key=value", n+1)
		}
		if key == "errno" {
			if value != "0" {
				return nil, fmt.Errorf("UAPI get: errno %s", value)
			}
			continue
		}
		if key == "public_key" {
			endPeer()
			k, err := parseHexKey(value)
			if err != nil {
				return nil, err
			}
			d.Peers = append(d.Peers, Peer{PublicKey: k})
			p = &d.Peers[len(d.Peers)-1]
			continue
		}
		if err := parseUAPIField(d, p, key, value, &hsSec, &hsNsec); err != nil {
			return nil, fmt.Errorf("UAPI reply %s: %w", key, err)
		}
	}
	endPeer()
	if !d.PrivateKey.IsZero() {
		d.PublicKey = d.PrivateKey.PublicKey()
	}
	return d, nil
}

// parseUAPIField sets one key of a get reply: the device's when p is nil,
// else the peer's.
func parseUAPIField(d *Device, p *Peer, key, value string, hsSec, hsNsec *int64) error {
	var err error
	switch {
	case key == "private_key" && p == nil:
		var k Key
		if k, err = parseHexKey(value); err == nil {
			d.PrivateKey, err = keyFromBytes(k[:])
		}
	case key == "listen_port" && p == nil:
		var v uint64
		v, err = strconv.ParseUint(value, 10, 16)
		d.ListenPort = uint16(v)
	case p == nil:
		// fwmark and keys of newer versions
	case key == "endpoint":
		p.Endpoint, err = netip.ParseAddrPort(value)
	case key == "allowed_ip":
		var a netip.Prefix
		if a, err = netip.ParsePrefix(value); err == nil {
			p.AllowedIPs = append(p.AllowedIPs, a)
		}
	case key == "last_handshake_time_sec":
		*hsSec, err = strconv.ParseInt(value, 10, 64)
	case key == "last_handshake_time_nsec":
		*hsNsec, err = strconv.ParseInt(value, 10, 64)
	case key == "rx_bytes":
		p.RxBytes, err = strconv.ParseUint(value, 10, 64)
	case key == "tx_bytes":
		p.TxBytes, err = strconv.ParseUint(value, 10, 64)
	case key == "persistent_keepalive_interval":
		var v uint64
		v, err = strconv.ParseUint(value, 10, 16)
		p.Keepalive = time.Duration(v) * time.Second
	}
	return err
}

// readUAPIErrno reads a set=1 reply: errno=N and an empty line.
func readUAPIErrno(r *bufio.Reader) error {
	errno := ""
	for n := 0; n < 16; n++ {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("UAPI reply cut short: %w", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "errno="); ok {
			errno = v
		}
	}
	switch errno {
	case "0":
		return nil
	case "":
		return errors.New("UAPI reply without errno")
	}
	return fmt.Errorf("UAPI set: errno %s", errno)
}
