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

// memberPath returns the file of vtep's member record.
func (s *Store) memberPath(vtep netip.Addr) (string, error) {
	if err := registry.CheckKeyIP(vtep); err != nil {
		return "", err
	}
	return filepath.Join(s.root, membersDir, vtep.String()), nil
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
	path, err := s.memberPath(m.VTEP)
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
	path, err := s.memberPath(vtep)
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
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// Members reads every file of ROOT/members; one that is no member record
// (its name no canonical address, its value no valid member of that
// address, too long, not a regular file) is a registry.Rejected.
func (s *Store) Members(ctx context.Context) ([]registry.Member, []registry.Rejected, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(filepath.Join(s.root, membersDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dirstore: %w", err)
	}
	var (
		out  []registry.Member
		rej  []registry.Rejected
		errs []error
	)
	for _, e := range ents {
		name := e.Name()
		if isTemp(name) {
			continue
		}
		key := membersDir + "/" + name
		vtep, err := netip.ParseAddr(name)
		if err != nil || vtep.String() != name || registry.CheckKeyIP(vtep) != nil {
			rej = append(rej, registry.Rejected{Key: key, Reason: registry.ReasonMalformed})
			continue
		}
		v, err := readValueMax(filepath.Join(s.root, membersDir, name), registry.MaxMemberLen)
		var rj registry.Rejected
		switch {
		case errors.Is(err, registry.ErrNotFound):
			continue // removed meanwhile
		case errors.As(err, &rj):
			rej = append(rej, rj)
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		}
		m, err := registry.ParseMember(vtep, []byte(v))
		if errors.As(err, &rj) {
			rej = append(rej, rj)
			continue
		}
		out = append(out, m)
	}
	return out, rej, errors.Join(errs...)
}
