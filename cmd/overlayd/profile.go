//go:build profile

package main

// A profiling build of overlayd (go build -tags profile, never the shipped
// binary): with OVERLAYD_PROFILE_DIR set, the process records a CPU profile
// from its start, and on SIGUSR1 writes into that directory the CPU
// profile so far (cpu.pprof, at the first signal), a heap profile after a
// collection (heap.pprof; heap-N.pprof at the N+1th signal) and the
// runtime's memory metrics (metrics.txt, metrics-N.txt).
// The scale benchmarks use it to say where start-up's time and the daemon's
// memory go (BenchmarkStartup100k with OVERLAYD_BENCH_PROFILE).

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"time"
)

func init() {
	dir := os.Getenv("OVERLAYD_PROFILE_DIR")
	if dir == "" {
		return
	}
	// Every 4 KiB allocated sampled: the records' tables are a few hundred
	// allocations of 10-40 KB, which the default rate (512 KiB) samples
	// too sparsely to weigh.
	runtime.MemProfileRate = 4096
	cpu, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		fmt.Fprintln(os.Stderr, "profile:", err)
		return
	}
	go watchPeak(dir)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGUSR1)
	go func() {
		for n := 0; ; n++ {
			<-sig
			suffix := ""
			if n > 0 {
				suffix = fmt.Sprintf("-%d", n)
			} else {
				pprof.StopCPUProfile()
				cpu.Close()
			}
			writeMetrics(filepath.Join(dir, "metrics-before-gc"+suffix+".txt"))
			runtime.GC()
			if f, err := os.Create(filepath.Join(dir, "heap"+suffix+".pprof")); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
			writeMetrics(filepath.Join(dir, "metrics"+suffix+".txt"))
			os.WriteFile(filepath.Join(dir, "done"+suffix), nil, 0o644)
		}
	}()
}

// writeMetrics writes the runtime's memory and GC metrics to path.
func writeMetrics(path string) {
	var samples []metrics.Sample
	for _, d := range metrics.All() {
		if d.Kind == metrics.KindUint64 || d.Kind == metrics.KindFloat64 {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			fmt.Fprintf(f, "%s %d\n", s.Name, s.Value.Uint64())
		case metrics.KindFloat64:
			fmt.Fprintf(f, "%s %g\n", s.Name, s.Value.Float64())
		}
	}
}

// watchPeak writes the heap profile of the largest live heap seen
// (peak.pprof), looking every 20 ms: what start-up holds at its peak.
func watchPeak(dir string) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	last := time.Now()
	for range time.Tick(20 * time.Millisecond) {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak && time.Since(last) > 100*time.Millisecond {
			peak, last = v, time.Now()
			if f, err := os.Create(filepath.Join(dir, "peak.pprof")); err == nil {
				pprof.Lookup("heap").WriteTo(f, 0)
				f.Close()
			}
			os.WriteFile(filepath.Join(dir, "peak.txt"), fmt.Appendf(nil, "%d bytes live at %v\n", v, time.Now()), 0o644)
		}
	}
}
