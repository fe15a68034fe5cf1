package wireguard

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// KeyLen is the length of a WireGuard key (Curve25519).
const KeyLen = 32

// Key is a WireGuard public key. Its text is standard base64, as wg(8)
// prints it.
type Key [KeyLen]byte

// String returns k in base64.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is all zeros (no key).
func (k Key) IsZero() bool { return k == Key{} }

// MarshalText encodes k in base64.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes k from base64 (ParseKey).
func (k *Key) UnmarshalText(b []byte) error {
	p, err := ParseKey(string(b))
	if err == nil {
		*k = p
	}
	return err
}

// ParseKey decodes a key from standard base64.
func ParseKey(s string) (Key, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != KeyLen {
		return Key{}, errors.New("wireguard: key is not the base64 of 32 bytes")
	}
	return Key(b), nil
}

// parseHexKey decodes a key from the hex of the UAPI protocol.
func parseHexKey(s string) (Key, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != KeyLen {
		return Key{}, errors.New("wireguard: key is not the hex of 32 bytes")
	}
	return Key(b), nil
}

// PrivateKey is a WireGuard private key. It never prints itself: String
// and the fmt verbs give "(private key)", and it has no text or JSON
// encoding; WriteKeyFile and the providers' encoders alone read its bytes.
type PrivateKey struct{ b [KeyLen]byte }

// GenerateKey returns a new private key from crypto/rand, clamped as
// Curve25519 wants (wg genkey does the same).
func GenerateKey() (PrivateKey, error) {
	var k PrivateKey
	if _, err := rand.Read(k.b[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("wireguard: generate a key: %w", err)
	}
	k.b[0] &= 248
	k.b[31] = k.b[31]&127 | 64
	return k, nil
}

// String hides the key.
func (PrivateKey) String() string { return "(private key)" }

// GoString hides the key.
func (PrivateKey) GoString() string { return "(private key)" }

// IsZero reports whether k is unset.
func (k PrivateKey) IsZero() bool { return k.b == [KeyLen]byte{} }

// Equal reports whether k and o are the same key.
func (k PrivateKey) Equal(o PrivateKey) bool { return k.b == o.b }

// PublicKey returns k's public key.
func (k PrivateKey) PublicKey() Key {
	priv, err := ecdh.X25519().NewPrivateKey(k.b[:])
	if err != nil {
		return Key{} // only for a key of the wrong length: never
	}
	return Key(priv.PublicKey().Bytes())
}

// keyFromBytes makes a private key of 32 bytes.
func keyFromBytes(b []byte) (PrivateKey, error) {
	if len(b) != KeyLen {
		return PrivateKey{}, errors.New("wireguard: private key is not 32 bytes")
	}
	var k PrivateKey
	copy(k.b[:], b)
	return k, nil
}

// ReadKeyFile reads a private key from path: one line of base64, as wg
// genkey writes it. A file that anyone but its owner may read or write is
// refused (mode 0600 or stricter), naming the mode.
func ReadKeyFile(path string) (PrivateKey, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("wireguard: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return PrivateKey{}, fmt.Errorf("wireguard: key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return PrivateKey{}, fmt.Errorf("wireguard: key file %s has mode %04o: others may read it (want 0600)", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("wireguard: key file: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil {
		return PrivateKey{}, fmt.Errorf("wireguard: key file %s holds no base64 key", path)
	}
	return keyFromBytes(raw)
}

// WriteKeyFile writes k to path (base64 and a newline) with mode 0600,
// atomically (a temporary file of mode 0600, fsynced, renamed into place)
// and durably (the directory fsynced).
func WriteKeyFile(path string, k PrivateKey) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("wireguard: key file: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return fmt.Errorf("wireguard: key file: %w", err)
	}
	_, werr := f.WriteString(base64.StdEncoding.EncodeToString(k.b[:]) + "\n")
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return fmt.Errorf("wireguard: key file: %w", werr)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
