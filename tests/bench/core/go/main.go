// Go peer for the core benchmarks (run with GOMAXPROCS=1, pinned to one CPU).
//
//	core_go gosched [N] [RUNS]    two goroutines ping-pong with runtime.Gosched()
//	core_go spawn   [N] [RUNS]    go f(); wg.Wait(), one at a time
//	core_go batch   [N] [ROUNDS]  go f() x N, then wg.Wait(); round 1 cold
//	core_go mem     [N]           N goroutines blocked in time.Sleep
//
// Output: "result <key> <value>" lines, details after '#', like the C programs.
package main

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func arg(i int, def int) int {
	if len(os.Args) > i {
		if v, err := strconv.Atoi(os.Args[i]); err == nil {
			return v
		}
	}
	return def
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func report(key string, v []float64, unit string) {
	fmt.Printf("# %s runs (%s):", key, unit)
	for _, x := range v {
		fmt.Printf(" %.2f", x)
	}
	fmt.Printf("\nresult %s %.3f\n", key, median(v))
}

// clock is wall time and the process's CPU time (all threads: the runtime's
// own count), so that a figure can be given both ways, like the C programs.
type clock struct{ wall, cpu int64 }

func cpuNow() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func now() clock { return clock{time.Now().UnixNano(), cpuNow()} }

// lap returns ns per operation since t0, wall and CPU.
func lap(t0 clock, ops float64) (float64, float64) {
	t1 := now()
	return float64(t1.wall-t0.wall) / ops, float64(t1.cpu-t0.cpu) / ops
}

func report2(key string, wall, cpu []float64, unit string) {
	report(key, wall, unit)
	report(key+"@cpu", cpu, unit)
}

func reportRounds(prefix string, wall, cpu []float64, unit string) {
	for i, v := range [][]float64{wall, cpu} {
		what := ""
		if i == 1 {
			what = ", CPU time"
		}
		fmt.Printf("# %s rounds%s (%s):", prefix, what, unit)
		for _, x := range v {
			fmt.Printf(" %.1f", x)
		}
		fmt.Println()
	}
	fmt.Printf("result %s_cold_ns %.3f\nresult %s_cold_ns@cpu %.3f\n", prefix, wall[0], prefix, cpu[0])
	if len(wall) > 1 {
		fmt.Printf("result %s_warm_ns %.3f\nresult %s_warm_ns@cpu %.3f\n", prefix, median(wall[1:]), prefix, median(cpu[1:]))
	}
}

// statusKiB reads a "VmRSS:  1234 kB" field of /proc/self/status.
func statusKiB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, field+":") {
			fs := strings.Fields(line[len(field)+1:])
			if len(fs) > 0 {
				v, _ := strconv.ParseInt(fs[0], 10, 64)
				return v
			}
		}
	}
	return -1
}

func gosched(n, runs int) {
	v, vc := make([]float64, runs), make([]float64, runs)
	for r := 0; r < runs; r++ {
		var wg sync.WaitGroup
		wg.Add(2)
		body := func() {
			for i := 0; i < n; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}
		t0 := now()
		go body()
		go body()
		wg.Wait()
		v[r], vc[r] = lap(t0, 2*float64(n))
	}
	report2("go_gosched_ns", v, vc, "ns/yield")
}

func nothing(wg *sync.WaitGroup) { wg.Done() }

func spawn(n, runs int) {
	var wg sync.WaitGroup
	for i := 0; i < 1000; i++ {
		wg.Add(1)
		go nothing(&wg)
		wg.Wait()
	}
	v, vc := make([]float64, runs), make([]float64, runs)
	for r := 0; r < runs; r++ {
		t0 := now()
		for i := 0; i < n; i++ {
			wg.Add(1)
			go nothing(&wg)
			wg.Wait()
		}
		v[r], vc[r] = lap(t0, float64(n))
	}
	report2("go_spawn_seq_ns", v, vc, "ns/goroutine")
}

func batch(n, rounds int) {
	v, vc := make([]float64, rounds), make([]float64, rounds)
	for r := 0; r < rounds; r++ {
		var wg sync.WaitGroup
		t0 := now()
		wg.Add(n)
		for i := 0; i < n; i++ {
			go nothing(&wg)
		}
		wg.Wait()
		v[r], vc[r] = lap(t0, float64(n))
	}
	reportRounds("go_batch", v, vc, "ns/goroutine")
}

func mem(n int) {
	runtime.GC()
	rss0, size0, pte0 := statusKiB("VmRSS"), statusKiB("VmSize"), statusKiB("VmPTE")
	var started sync.WaitGroup
	started.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			started.Done()
			time.Sleep(time.Hour) // ends with the process, the Go way
		}()
	}
	started.Wait()
	runtime.Gosched()
	rss1, size1, pte1 := statusKiB("VmRSS"), statusKiB("VmSize"), statusKiB("VmPTE")
	fmt.Printf("# go_mem: VmRSS %d -> %d KiB, VmSize %d -> %d KiB, VmPTE %d -> %d KiB, n=%d\n",
		rss0, rss1, size0, size1, pte0, pte1, n)
	fmt.Printf("result go_mem_rss_kib %.3f\n", float64(rss1-rss0)/float64(n))
	fmt.Printf("result go_mem_vmsize_kib %.3f\n", float64(size1-size0)/float64(n))
	fmt.Printf("result go_mem_pte_kib %.3f\n", float64(pte1-pte0)/float64(n))
}

func main() {
	mode := ""
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	fmt.Printf("# GOMAXPROCS=%d, %s\n", runtime.GOMAXPROCS(0), runtime.Version())
	switch mode {
	case "gosched":
		gosched(arg(2, 2000000), arg(3, 5))
	case "spawn":
		spawn(arg(2, 1000000), arg(3, 5))
	case "batch":
		batch(arg(2, 100000), arg(3, 7))
	case "mem":
		mem(arg(2, 100000))
	default:
		fmt.Fprintln(os.Stderr, "usage: core_go gosched|spawn|batch|mem [N] [RUNS]")
		os.Exit(2)
	}
}
