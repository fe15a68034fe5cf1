package dirstore

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// listNice is the nice value a listing's thread runs at: a listing reads
// every record (a reconcile pass and the VTEP allowlist's resync each list
// the store every 10 s: 2,000 files for 1,000 records, both cores busy for
// tens of milliseconds on a 2-core node), and a miss that arrives meanwhile
// is answered by a thread at the daemon's own priority, which the kernel
// then runs first instead of after the listing's time slice (an isolated
// miss waited 6.4 ms behind one).
const listNice = 10

// lowered runs fn with its goroutine locked to its thread, that thread at
// listNice, and puts the thread's priority back after. Where the priority
// cannot be lowered (already lower, getpriority fails) fn runs as it is.
// Where it cannot be put back (no CAP_SYS_NICE: a thread may lower its
// priority, not raise it again), the goroutine stays locked to its thread,
// so that no other goroutine runs at listNice.
func lowered(fn func()) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	old := 20 - prio // the kernel's getpriority is 20 - nice
	if err != nil || old >= listNice || unix.Setpriority(unix.PRIO_PROCESS, tid, listNice) != nil {
		runtime.UnlockOSThread()
		fn()
		return
	}
	fn()
	if unix.Setpriority(unix.PRIO_PROCESS, tid, old) != nil {
		return // stays locked: see above
	}
	runtime.UnlockOSThread()
}
