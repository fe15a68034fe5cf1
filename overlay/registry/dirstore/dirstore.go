package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/overlay/registry"
	"golang.org/x/sys/unix"
)

// Store is a registry.Registry in a directory, one value per file:
// ROOT/arp/<ip> holds "<mac>\n" and ROOT/fdb/<mac> holds "<vtep ip>\n". It
// takes no locks: every file is written to a temporary file in the same
// directory, fsynced, and then hard-linked into
// place, which atomically creates it only if it does not exist yet; so
// readers never see a partial value, and of two nodes registering the same IP
// with different MACs exactly one wins. Reads tolerate a trailing newline; a
// file that is no record (malformed, too long, not a regular file) is a
// registry.Rejected, named by its key and never quoted. ROOT/config holds
// the overlay's network (NetworkFile), written the same way.
type Store struct {
	root  string
	calls fileCalls // for lookups and listings: raw on a local filesystem
	cache *cache    // nil unless EnableCache turned it on
}

// The capabilities of a Store (see package registry).
var (
	_ registry.Registry     = (*Store)(nil)
	_ registry.NetworkStore = (*Store)(nil)
	_ registry.BlockStore   = (*Store)(nil)
	_ registry.KeyLister    = (*Store)(nil)
	_ registry.Stamper      = (*Store)(nil)
	_ registry.Notifier     = (*Store)(nil)
	_ registry.RejectLister = (*Store)(nil)
	_ registry.Exporter     = (*Store)(nil)
)

// Subdirectories of a Store root.
const (
	arpDir = "arp"
	fdbDir = "fdb"
)

// New opens (creating if needed) the store rooted at root.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("dirstore: empty root")
	}
	for _, d := range []string{arpDir, fdbDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("dirstore: %w", err)
		}
	}
	return &Store{root: root, calls: callsFor(root)}, nil
}

// Opener is the registry.Opener of the "dir" scheme: dir:PATH opens
// (creating it if needed) the store rooted at PATH. Of the options only
// Cache applies (EnableCache): the directory holds one overlay, and records
// persist until unregistered.
func Opener(_ context.Context, url string, o registry.Options) (registry.Registry, error) {
	root, ok := strings.CutPrefix(url, "dir:")
	if !ok || root == "" {
		return nil, registry.BadURL(fmt.Errorf("dirstore: store URL %q: want dir:PATH", registry.RedactURL(url)))
	}
	s, err := New(root)
	if err == nil && o.Cache {
		s.EnableCache()
	}
	return s, err
}

// EnableCache makes s keep the records its lookups and listings read in
// memory, coherent with the directories (inotify), and answer lookups from
// there: a lookup then costs one non-blocking read of the events queued
// since the last, not a file's open, stat, read and close, and still
// answers what the directory holds at that moment. It is for a long-lived
// reader (the node daemon), and only on a local filesystem (on NFS other
// machines' changes raise no event). Lookups fill the cache with what they
// read, listings with every record; a cache that cannot start (no inotify
// instance left) is tried again by every listing. See CacheStats. Close
// releases it.
func (s *Store) EnableCache() {
	if s.cache != nil || s.calls != rawCalls {
		return
	}
	c := newCache(s.root)
	c.mu.Lock()
	c.start() //nolint:errcheck // off until a listing starts it
	c.mu.Unlock()
	s.cache = c
}

// CacheStats returns what the cache (EnableCache) did; the zero value if
// there is none.
func (s *Store) CacheStats() CacheStats {
	if s.cache == nil {
		return CacheStats{}
	}
	s.cache.mu.Lock()
	defer s.cache.mu.Unlock()
	return s.cache.snapshot()
}

// Root returns the store's directory.
func (s *Store) Root() string { return s.root }

// Close releases the cache's inotify instance, if EnableCache made one; a
// Store holds no other resources.
func (s *Store) Close() error {
	if s.cache != nil {
		s.cache.mu.Lock()
		s.cache.stop()
		s.cache.closed = true
		s.cache.mu.Unlock()
	}
	return nil
}

// arpPath returns the file of ip's record. Only an address whose text is
// canonical (registry.CheckKeyIP) names a file: no key leads out of the
// store's root.
func (s *Store) arpPath(ip netip.Addr) (string, error) {
	if err := registry.CheckKeyIP(ip); err != nil {
		return "", err
	}
	return filepath.Join(s.root, arpDir, ip.String()), nil
}

// fdbPath returns the file of m's record (a MAC's text is always canonical).
func (s *Store) fdbPath(m ethaddr.MAC) string { return filepath.Join(s.root, fdbDir, m.String()) }

// followedDir is a directory whose files Stamp and Notify follow. An
// optional one may not exist: ROOT/members in an overlay without
// encryption, ROOT/nodes before a node is advertised.
type followedDir struct {
	name     string
	optional bool
}

// followedDirs returns the directories Stamp and Notify follow.
func followedDirs() [4]followedDir {
	return [...]followedDir{{arpDir, false}, {fdbDir, false}, {membersDir, true}, {nodesDir, true}}
}

// Stamp returns a value that changes whenever a record file is created or
// removed: the modification times of ROOT/arp, ROOT/fdb, ROOT/members and
// ROOT/nodes (a rewritten record is a new file, linked into place). One
// stat per directory, cheap enough to poll; on NFS it is as fresh as the
// client's attribute cache.
func (s *Store) Stamp() (string, error) {
	var out string
	for _, d := range followedDirs() {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(s.root, d.name), &st); err != nil {
			if d.optional && errors.Is(err, unix.ENOENT) {
				continue
			}
			return "", fmt.Errorf("dirstore: %w", err)
		}
		out += fmt.Sprintf("%d.%d/%d.%d ", st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec)
	}
	return out, nil
}

// Notify delivers a value on the returned channel soon after a record file
// is created or removed in ROOT/arp, ROOT/fdb, ROOT/members or ROOT/nodes
// (those two if there) by any process of this machine (inotify), coalescing
// bursts, until ctx ends. Changes made by
// other machines of an NFS share are not seen: poll Stamp for those.
func (s *Store) Notify(ctx context.Context) (<-chan struct{}, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("dirstore: inotify: %w", err)
	}
	for _, d := range followedDirs() {
		const mask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CLOSE_WRITE
		if _, err := unix.InotifyAddWatch(fd, filepath.Join(s.root, d.name), mask); err != nil {
			if d.optional && errors.Is(err, unix.ENOENT) {
				continue
			}
			unix.Close(fd)
			return nil, fmt.Errorf("dirstore: inotify %s: %w", d.name, err)
		}
	}
	f := os.NewFile(uintptr(fd), "inotify") // non-blocking: reads go through the poller, Close ends them
	ch := make(chan struct{}, 1)
	context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		defer close(ch)
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			select {
			case ch <- struct{}{}:
			default: // one pending notice stands for many events
			}
		}
	}()
	return ch, nil
}

// LookupMAC returns the MAC recorded in ROOT/arp/<ip>.
func (s *Store) LookupMAC(ctx context.Context, ip netip.Addr) (ethaddr.MAC, error) {
	if err := ctx.Err(); err != nil {
		return ethaddr.MAC{}, err
	}
	var buf [pathMax]byte
	p, err := s.arpPathTo(buf[:0], ip)
	if err != nil {
		return ethaddr.MAC{}, err
	}
	if s.cache == nil {
		mac, _, err := s.readMAC(p)
		return mac, err
	}
	return lookupThrough(s.cache, &s.cache.macs, ip, func() (ethaddr.MAC, bool, error) { return s.readMAC(p) })
}

// LookupVTEP returns the VTEP recorded in ROOT/fdb/<mac>.
func (s *Store) LookupVTEP(ctx context.Context, mac ethaddr.MAC) (netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, err
	}
	var buf [pathMax]byte
	p := s.fdbPathTo(buf[:0], mac)
	if s.cache == nil {
		vtep, _, err := s.readAddr(p)
		return vtep, err
	}
	return lookupThrough(s.cache, &s.cache.vteps, mac, func() (netip.Addr, bool, error) { return s.readAddr(p) })
}

// Register records r (see Registry.Register). The IP record is created first;
// if the MAC record then conflicts, the IP record this call created is
// removed again.
func (s *Store) Register(ctx context.Context, r registry.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.Validate(); err != nil {
		return err
	}
	arp, err := s.arpPath(r.IP)
	if err != nil {
		return err
	}
	created, have, err := createExclusive(arp, r.MAC.String())
	if err != nil {
		return err
	}
	if !created {
		mac, err := parseMAC(arp, have)
		if err != nil {
			return err
		}
		if mac != r.MAC {
			return fmt.Errorf("%w: IP %s is registered to MAC %s, not %s", registry.ErrConflict, r.IP, mac, r.MAC)
		}
	}
	undo := func() {
		if created {
			removeIfHolds(arp, r.MAC.String())
		}
	}
	fcreated, fhave, err := createExclusive(s.fdbPath(r.MAC), r.VTEP.String())
	if err != nil {
		undo()
		return err
	}
	if !fcreated {
		vtep, err := parseAddr(s.fdbPath(r.MAC), fhave)
		if err != nil {
			undo()
			return err
		}
		if vtep != r.VTEP {
			undo()
			return fmt.Errorf("%w: MAC %s is registered at VTEP %s, not %s", registry.ErrConflict, r.MAC, vtep, r.VTEP)
		}
	}
	return nil
}

// Unregister removes r's records that still hold r's values.
func (s *Store) Unregister(ctx context.Context, r registry.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var errs []error
	if r.IP.IsValid() {
		arp, err := s.arpPath(r.IP)
		if err != nil {
			return err
		}
		errs = append(errs, removeIfHolds(arp, r.MAC.String()))
	}
	if r.VTEP.IsValid() {
		errs = append(errs, removeIfHolds(s.fdbPath(r.MAC), r.VTEP.String()))
	}
	return errors.Join(errs...)
}

// List returns the records in ROOT/arp, sorted by IP, each with the VTEP of
// its MAC if ROOT/fdb has one (see ListRejected: the files that are no
// record are skipped).
func (s *Store) List(ctx context.Context) ([]registry.Record, error) {
	recs, _, err := s.ListRejected(ctx)
	return recs, err
}

// ListRejected returns the records in ROOT/arp, sorted by IP, each with the
// VTEP of its MAC if ROOT/fdb has one, and the files that are no record:
// a name that is not the canonical text of an address, a value that does
// not parse or is too long, a symbolic link, a FIFO, a directory... The
// error is for what stops a record being read at all (ROOT/arp unreadable,
// an I/O error): the listing is then incomplete.
func (s *Store) ListRejected(ctx context.Context) ([]registry.Record, []registry.Rejected, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(filepath.Join(s.root, arpDir))
	if err != nil {
		return nil, nil, fmt.Errorf("dirstore: %w", err)
	}
	l := lister{s: s, vteps: make(map[ethaddr.MAC]netip.Addr)}
	if c := s.cache; c != nil {
		c.mu.Lock()
		c.check()
		c.mu.Unlock()
	}
	for _, e := range ents {
		if name := e.Name(); !strings.HasPrefix(name, ".") { // not a temporary file being written
			l.arp(name)
		}
	}
	sort.Slice(l.recs, func(i, j int) bool { return l.recs[i].IP.Less(l.recs[j].IP) })
	return l.recs, l.rejected, errors.Join(l.errs...)
}

// lister is one listing of a Store.
type lister struct {
	s        *Store
	recs     []registry.Record
	rejected []registry.Rejected
	errs     []error
	vteps    map[ethaddr.MAC]netip.Addr // fdb files read, invalid when none
	path     []byte                     // the path of the record read
}

// arp lists ROOT/arp/name.
func (l *lister) arp(name string) {
	key := arpDir + "/" + name
	ip, err := netip.ParseAddr(name)
	if err != nil || registry.CheckKeyIP(ip) != nil || ip.String() != name {
		l.rejected = append(l.rejected, registry.Rejected{Key: key, Reason: registry.ReasonMalformed})
		return
	}
	l.path, _ = l.s.arpPathTo(l.path[:0], ip) // checked above
	c := l.s.cache
	if c != nil {
		// Held from each read to its keeping (see cache).
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	mac, only, err := l.s.readMAC(l.path)
	if !l.note(err) {
		return
	}
	if c != nil && only {
		keep(c, c.macs, ip, mac)
	}
	r := registry.Record{IP: ip, MAC: mac}
	vtep, ok := l.vteps[mac]
	if !ok {
		l.path = l.s.fdbPathTo(l.path[:0], mac)
		vtep, only, err = l.s.readAddr(l.path)
		if l.note(err) && c != nil && only {
			keep(c, c.vteps, mac, vtep)
		}
		l.vteps[mac] = vtep
	}
	r.VTEP = vtep
	l.recs = append(l.recs, r)
}

// note sorts a read's error: a file that is gone is skipped (removed
// meanwhile), one that is no record rejected, anything else a failure. It
// says whether the read succeeded.
func (l *lister) note(err error) bool {
	var rj registry.Rejected
	switch {
	case err == nil:
		return true
	case errors.Is(err, registry.ErrNotFound):
	case errors.As(err, &rj):
		l.rejected = append(l.rejected, rj)
	default:
		l.errs = append(l.errs, err)
	}
	return false
}

// notRecord is the error of a file that is no record: it names the file by
// its key (arp/NAME, bounded) and says what it is, never what it holds, and
// matches registry.ErrRejected (errors.As gives the registry.Rejected).
func notRecord(path string, why registry.Reason, what string) error {
	rj := registry.Rejected{Key: filepath.Base(filepath.Dir(path)) + "/" + filepath.Base(path), Reason: why}
	return fmt.Errorf("dirstore: %s %s: not a record: %w", registry.LogKey(rj.Key), what, rj)
}

func parseMAC(path, v string) (ethaddr.MAC, error) {
	m, err := ethaddr.Parse(v)
	if err != nil {
		return ethaddr.MAC{}, notRecord(path, registry.ReasonMalformed, "holds no MAC")
	}
	return m, nil
}

func parseAddr(path, v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return netip.Addr{}, notRecord(path, registry.ReasonMalformed, "holds no IP address")
	}
	return a, nil
}

// createExclusive atomically creates path holding value+"\n" unless it
// exists. It reports whether it created the file and, if not, the value the
// file holds.
func createExclusive(path, value string) (created bool, have string, err error) {
	return createExclusiveMax(path, value, registry.MaxValueLen)
}

// createExclusiveMax is createExclusive for values of up to max bytes.
func createExclusiveMax(path, value string, max int) (created bool, have string, err error) {
	tmp, err := writeTemp(path, value)
	if err != nil {
		return false, "", err
	}
	defer tmp.close()
	for range 3 {
		err = tmp.link(path)
		if err == nil {
			syncDir(filepath.Dir(path))
			return true, "", nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return false, "", fmt.Errorf("dirstore: %w", err)
		}
		have, err = readValueMax(path, max)
		if errors.Is(err, registry.ErrNotFound) {
			continue // removed between link and read: try again
		}
		return false, have, err
	}
	return false, "", fmt.Errorf("dirstore: %s keeps appearing and vanishing", path)
}

// removeIfHolds removes path if it holds value; a missing file is fine.
func removeIfHolds(path, value string) error {
	have, err := readValue(path)
	if errors.Is(err, registry.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if have != value {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: %w", err)
	}
	return nil
}

// removeSynced removes path, if there, and fsyncs its directory so that
// the removal survives a crash (best effort).
func removeSynced(path string) error {
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("dirstore: %w", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// syncDir fsyncs a directory so a new entry survives a crash (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// Keys returns the IPs (arp/) and MACs (fdb/) the store holds records for,
// from the two directories' listings alone: no record is read, so it costs
// two readdirs, where List reads two files per record. Names that are not
// canonical keys and temporary files are skipped.
func (s *Store) Keys(ctx context.Context) (ips []netip.Addr, macs []ethaddr.MAC, err error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	names := func(dir string) ([]string, error) {
		f, err := os.Open(filepath.Join(s.root, dir))
		if err != nil {
			return nil, fmt.Errorf("dirstore: %w", err)
		}
		defer f.Close()
		n, err := f.Readdirnames(-1)
		if err != nil {
			return nil, fmt.Errorf("dirstore: %w", err)
		}
		return n, nil
	}
	arp, err := names(arpDir)
	if err != nil {
		return nil, nil, err
	}
	fdb, err := names(fdbDir)
	if err != nil {
		return nil, nil, err
	}
	ips = make([]netip.Addr, 0, len(arp))
	for _, n := range arp {
		if ip, err := netip.ParseAddr(n); err == nil && ip.String() == n && registry.CheckKeyIP(ip) == nil {
			ips = append(ips, ip)
		}
	}
	macs = make([]ethaddr.MAC, 0, len(fdb))
	for _, n := range fdb {
		if mac, err := ethaddr.Parse(n); err == nil && mac.String() == n {
			macs = append(macs, mac)
		}
	}
	return ips, macs, nil
}
