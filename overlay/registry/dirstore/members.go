package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/overlaynet/overlaynet/overlay/registry"
)

var _ registry.MemberStore = (*Store)(nil)

// membersDir holds the member records of an encrypted overlay:
// ROOT/members/<vtep> holds one line of JSON (registry.Member).
const membersDir = "members"

// addrPath returns the file of ROOT/dir named by address a. Only an
// address whose text is canonical (registry.CheckKeyIP) names a file.
func (s *Store) addrPath(dir string, a netip.Addr) (string, error) {
	if err := registry.CheckKeyIP(a); err != nil {
		return "", err
	}
	return filepath.Join(s.root, dir, a.String()), nil
}

// eachAddrFile calls value for each file of ROOT/dir named by a canonical
// address, with its value of up to max bytes, and bad for each other one
// (a name that is no canonical address, a value too long or not in a
// regular file). It skips the writers' temporary files and the files
// removed meanwhile, and returns the errors of the files it could not read.
func (s *Store) eachAddrFile(dir string, max int, value func(a netip.Addr, v string), bad func(registry.Rejected)) error {
	ents, err := os.ReadDir(filepath.Join(s.root, dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if isTemp(name) {
			continue
		}
		a, err := netip.ParseAddr(name)
		if err != nil || a.String() != name || registry.CheckKeyIP(a) != nil {
			bad(registry.Rejected{Key: dir + "/" + name, Reason: registry.ReasonMalformed})
			continue
		}
		v, err := readValueMax(filepath.Join(s.root, dir, name), max)
		var rj registry.Rejected
		switch {
		case errors.Is(err, registry.ErrNotFound):
			// removed meanwhile
		case errors.As(err, &rj):
			bad(rj)
		case err != nil:
			errs = append(errs, err)
		default:
			value(a, v)
		}
	}
	return errors.Join(errs...)
}

// ClaimMember creates ROOT/members/<vtep> holding m with the hard-link
// publication of the records (of two nodes claiming one tunnel address,
// exactly one link succeeds), or, when m's owner holds the file already,
// replaces it: a complete, fsynced file renamed over it. A member of
// another owner is a conflict.
func (s *Store) ClaimMember(ctx context.Context, m registry.Member) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	value, err := registry.MarshalMember(m)
	if err != nil {
		return err
	}
	path, err := s.addrPath(membersDir, m.VTEP)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	created, have, err := createExclusiveMax(path, value, registry.MaxMemberLen)
	if err != nil || created {
		return err
	}
	if have == value {
		return nil
	}
	held, err := registry.ParseMember(m.VTEP, []byte(have))
	if err == nil && held.Owner != m.Owner {
		return fmt.Errorf("%w: tunnel address %s is held by another node (%s)", registry.ErrConflict, m.VTEP, held.Endpoint)
	}
	if err != nil {
		return fmt.Errorf("%w: tunnel address %s holds no member record: %w", registry.ErrConflict, m.VTEP, err)
	}
	return replaceFile(path, value)
}

// replaceFile writes value+"\n" to a temporary file next to path, fsyncs
// it and renames it over path.
func replaceFile(path, value string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("dirstore: %w", err)
	}
	werr := writeSync(f, value)
	if cerr := f.Close(); werr == nil && cerr != nil {
		werr = fmt.Errorf("dirstore: %w", cerr)
	}
	if werr == nil {
		if err := os.Rename(f.Name(), path); err != nil {
			werr = fmt.Errorf("dirstore: %w", err)
		}
	}
	if werr != nil {
		os.Remove(f.Name())
		return werr
	}
	syncDir(filepath.Dir(path))
	return nil
}

// RemoveMember removes ROOT/members/<vtep> if owner holds it.
func (s *Store) RemoveMember(ctx context.Context, vtep netip.Addr, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	path, err := s.addrPath(membersDir, vtep)
	if err != nil {
		return err
	}
	v, err := readValueMax(path, registry.MaxMemberLen)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m, err := registry.ParseMember(vtep, []byte(v)); err != nil || m.Owner != owner {
		return nil
	}
	return removeSynced(path)
}

// Members reads every file of ROOT/members; one that is no member record
// (its name no canonical address, its value no valid member of that
// address, too long, not a regular file) is a registry.Rejected.
func (s *Store) Members(ctx context.Context) ([]registry.Member, []registry.Rejected, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var (
		out []registry.Member
		rej []registry.Rejected
	)
	err := s.eachAddrFile(membersDir, registry.MaxMemberLen, func(vtep netip.Addr, v string) {
		m, err := registry.ParseMember(vtep, []byte(v))
		var rj registry.Rejected
		if errors.As(err, &rj) {
			rej = append(rej, rj)
			return
		}
		out = append(out, m)
	}, func(rj registry.Rejected) { rej = append(rej, rj) })
	return out, rej, err
}
