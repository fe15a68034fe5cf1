package dirstore

import (
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"path/filepath"
	"sync"
	"unsafe"

	"github.com/overlaynet/overlaynet/ethaddr"
	"github.com/overlaynet/overlaynet/internal/promtext"
	"golang.org/x/sys/unix"
)

// cacheMax bounds each of a cache's two maps (arp/ and fdb/ records), at
// about 80 bytes a record (10 MB for both maps full): a store with more
// records keeps reading the rest from their files.
const cacheMax = 1 << 16

// cache is a Store's copy of the records its lookups and listings read
// (EnableCache: a long-lived reader, the node daemon), kept coherent with
// ROOT/arp and ROOT/fdb by inotify, so that a lookup answers what the
// directory holds at that moment without opening a file.
//
// Every use of the copy first reads the events queued since the last one
// (one non-blocking read) and forgets each record named. The kernel queues
// an event before the change's system call returns, so a lookup that starts
// after a change completed never answers from before it. A record read from
// its file is kept only while mu is held from the read on: an event of a
// change made meanwhile is read by the next holder, which forgets it again.
//
// What the events cannot show is a change made through a second hard link
// outside the directory (a record file linked nowhere else is the only
// kind kept: see readRecord's links) or ROOT renamed and replaced behind
// the watches; a listing (every reconcile pass) checks the directories
// still are the ones watched and reads every record again. An overflowed
// event queue empties the copy; ROOT/arp or ROOT/fdb removed, renamed or
// replaced turns it off until the next listing.
//
// The copy is kept only on a local filesystem (rawCalls): on NFS the
// events of other machines' changes never come.
type cache struct {
	mu   sync.Mutex
	root string
	fd   int // the inotify instance, non-blocking; -1 while off
	// wdRoot, wdARP and wdFDB are the watches of ROOT, ROOT/arp and ROOT/fdb.
	wdRoot, wdARP, wdFDB int32
	// arpID and fdbID are the directories watched, checked by every
	// listing against what the paths name now.
	arpID, fdbID fileID
	macs         map[netip.Addr]ethaddr.MAC
	vteps        map[ethaddr.MAC]netip.Addr
	buf          []byte
	stats        CacheStats
	closed       bool // by the Store's Close: never started again
}

// CacheStats counts what a Store's cache did (EnableCache).
type CacheStats struct {
	// On says whether the cache is on now.
	On bool
	// Entries is how many records it holds now.
	Entries int
	// Hits and Misses count lookups answered from it and from the files.
	Hits, Misses uint64
	// Forgotten counts records forgotten for an event naming them.
	Forgotten uint64
	// Starts counts the times it was (re)started; Overflows the event
	// queue overflows that emptied it.
	Starts, Overflows uint64
}

// fileID is a file's device and inode.
type fileID struct{ dev, ino uint64 }

// idOf returns the fileID of path (following symbolic links, as a lookup's
// path does).
func idOf(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// Watched events: of ROOT, the creation, removal or renaming of its
// entries (arp and fdb among them) and its own removal or renaming; of
// ROOT/arp and ROOT/fdb, every change of an entry and their own removal or
// renaming. IN_Q_OVERFLOW, IN_IGNORED and IN_UNMOUNT come unasked.
const (
	rootEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	recordEvents = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	// gone are the events after which a watch no longer follows the
	// directory a path names.
	gone = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// eventMax is the room one inotify event may take: its header and the
// longest name.
const eventMax = unix.SizeofInotifyEvent + unix.NAME_MAX + 1

func newCache(root string) *cache { return &cache{root: root, fd: -1} }

// on says whether the cache is on. mu held.
func (c *cache) on() bool { return c.fd >= 0 }

// start turns the cache on, empty: the watches first, then the directories'
// identities, so that a directory replaced in between is caught by the next
// check. mu held.
func (c *cache) start() error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return err
	}
	watch := func(path string, mask uint32) (int32, error) {
		wd, err := unix.InotifyAddWatch(fd, path, mask)
		return int32(wd), err
	}
	var errs [3]error
	c.wdRoot, errs[0] = watch(c.root, rootEvents)
	c.wdARP, errs[1] = watch(filepath.Join(c.root, arpDir), recordEvents)
	c.wdFDB, errs[2] = watch(filepath.Join(c.root, fdbDir), recordEvents)
	err = errors.Join(errs[:]...)
	if err == nil {
		c.arpID, err = idOf(filepath.Join(c.root, arpDir))
	}
	if err == nil {
		c.fdbID, err = idOf(filepath.Join(c.root, fdbDir))
	}
	if err != nil {
		unix.Close(fd)
		return err
	}
	c.fd = fd
	if c.buf == nil {
		c.buf = make([]byte, 8*eventMax)
	}
	c.macs = make(map[netip.Addr]ethaddr.MAC)
	c.vteps = make(map[ethaddr.MAC]netip.Addr)
	c.stats.Starts++
	return nil
}

// stop turns the cache off and forgets everything. mu held.
func (c *cache) stop() {
	if c.fd >= 0 {
		unix.Close(c.fd)
	}
	c.fd = -1
	c.macs, c.vteps = nil, nil
}

// check, at the start of a listing, turns the cache on if it is off, and
// starts it again if ROOT/arp or ROOT/fdb is no longer the directory
// watched. mu held.
func (c *cache) check() {
	if c.closed {
		return
	}
	if c.on() {
		arp, errA := idOf(filepath.Join(c.root, arpDir))
		fdb, errF := idOf(filepath.Join(c.root, fdbDir))
		if errA == nil && errF == nil && arp == c.arpID && fdb == c.fdbID {
			return
		}
		c.stop()
	}
	c.start() //nolint:errcheck // off until the next listing: lookups read the files
}

// drain reads the queued events and forgets the records they name; it
// reports whether the cache is still on. mu held.
func (c *cache) drain() bool {
	for c.on() {
		// A raw call: the descriptor never blocks (IN_NONBLOCK), and a
		// lookup is on the path of a miss (see fileCalls).
		n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&c.buf[0])), uintptr(len(c.buf)))
		switch errno {
		case 0:
		case unix.EAGAIN:
			return true
		case unix.EINTR:
			continue
		default:
			c.stop()
			return false
		}
		if err := parseEvents(c.buf[:n], c.event); err != nil {
			c.stop() // not what the kernel writes: trust nothing kept
			return false
		}
		if int(n) <= len(c.buf)-eventMax {
			return c.on() // the read took all there was
		}
	}
	return false
}

// event applies one event.
func (c *cache) event(wd int32, mask uint32, name []byte) {
	switch {
	case mask&unix.IN_Q_OVERFLOW != 0:
		// Events were lost: nothing kept can be trusted.
		c.stats.Overflows++
		clear(c.macs)
		clear(c.vteps)
	case wd == c.wdRoot:
		if mask&gone != 0 || string(name) == arpDir || string(name) == fdbDir {
			c.stop()
		}
	case wd != c.wdARP && wd != c.wdFDB:
		// The watch of a former instance: none is ever reused in one.
	case mask&gone != 0:
		c.stop()
	case wd == c.wdARP:
		if ip, err := netip.ParseAddr(string(name)); err == nil {
			if _, ok := c.macs[ip]; ok {
				delete(c.macs, ip)
				c.stats.Forgotten++
			}
		}
	default: // wd == c.wdFDB
		if mac, err := ethaddr.Parse(string(name)); err == nil {
			if _, ok := c.vteps[mac]; ok {
				delete(c.vteps, mac)
				c.stats.Forgotten++
			}
		}
	}
}

// errShortEvent is a read of inotify events that ends inside one.
var errShortEvent = errors.New("dirstore: inotify: truncated event")

// parseEvents calls fn for each inotify event in b (struct inotify_event,
// in the host's byte order) with its name up to the first NUL.
func parseEvents(b []byte, fn func(wd int32, mask uint32, name []byte)) error {
	for len(b) > 0 {
		if len(b) < unix.SizeofInotifyEvent {
			return errShortEvent
		}
		wd := int32(binary.NativeEndian.Uint32(b[0:4]))
		mask := binary.NativeEndian.Uint32(b[4:8])
		l := binary.NativeEndian.Uint32(b[12:16])
		b = b[unix.SizeofInotifyEvent:]
		if uint64(l) > uint64(len(b)) {
			return errShortEvent
		}
		name := b[:l]
		for i, ch := range name {
			if ch == 0 {
				name = name[:i]
				break
			}
		}
		fn(wd, mask, name)
		b = b[l:]
	}
	return nil
}

// lookupThrough answers key from m, one of c's maps, or, when the cache
// holds none or is off, from read, keeping what read found in a file that
// has no other link. It holds mu from the events' reading to the keeping
// (see cache).
func lookupThrough[K comparable, V any](c *cache, m *map[K]V, key K, read func() (v V, only bool, err error)) (V, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drain() { // which may turn the cache off: *m is read after it
		v, ok := (*m)[key]
		if ok {
			c.stats.Hits++
			return v, nil
		}
		c.stats.Misses++
	}
	v, only, err := read()
	if err == nil && only {
		keep(c, *m, key, v)
	}
	return v, err
}

// keep puts key → v in m, one of c's maps, if the cache is on and m has
// room (cacheMax) or holds key already. mu held.
func keep[K comparable, V any](c *cache, m map[K]V, key K, v V) {
	if !c.on() {
		return
	}
	if _, ok := m[key]; ok || len(m) < cacheMax {
		m[key] = v
	}
}

// snapshot returns the cache's counters. mu held.
func (c *cache) snapshot() CacheStats {
	s := c.stats
	s.On = c.on()
	s.Entries = len(c.macs) + len(c.vteps)
	return s
}

// WriteMetrics writes the cache's counters (EnableCache) in the Prometheus
// text format, for the node daemon's exposition; nothing without a cache.
func (s *Store) WriteMetrics(w io.Writer) {
	if s.cache == nil {
		return
	}
	st := s.CacheStats()
	on := int64(0)
	if st.On {
		on = 1
	}
	answers := [...]uint64{st.Hits, st.Misses}
	promtext.Family(w, "overlayd_store_cache_lookups_total", "counter", "Directory store lookups by where the answer came from: memory (the cache, coherent with the files) or file.",
		"answer", len(answers), func(i int) (string, uint64) { return [...]string{"memory", "file"}[i], answers[i] })
	promtext.Counter(w, "overlayd_store_cache_forgotten_total", "Records the cache forgot because a change to their file was seen.", st.Forgotten)
	promtext.Counter(w, "overlayd_store_cache_overflows_total", "Overflows of the cache's event queue, each emptying the cache.", st.Overflows)
	promtext.Gauge(w, "overlayd_store_cache_entries", "Records in the directory store's cache.", int64(st.Entries))
	promtext.Gauge(w, "overlayd_store_cache_on", "Whether the directory store's cache is on (off until the first listing, and from a replaced directory to the next).", on)
}
