// Go's side of the boss/worker throughput benchmark: one producer goroutine
// sends N ints into a buffered channel, three worker goroutines range over
// it; the producer closes it at the end. Run with GOMAXPROCS=1.
//
//	toolbox_go CAP [N] [RUNS]    items per second (wall clock, and per second
//	                             of the process's CPU time: KEY@cpu), medians
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"
)

const workers = 3

// The process's CPU time (user + system), in seconds.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func run(capacity, n int) (float64, float64) {
	ch := make(chan int, capacity)
	var wg sync.WaitGroup
	var got [workers]int
	var sum [workers]int
	c0 := cpuSeconds()
	start := time.Now()
	go func() {
		for i := 1; i <= n; i++ {
			ch <- i
		}
		close(ch)
	}()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for v := range ch {
				got[w]++
				sum[w] += v
			}
		}(w)
	}
	wg.Wait()
	dt := time.Since(start).Seconds()
	dc := cpuSeconds() - c0
	total, s := 0, 0
	for w := 0; w < workers; w++ {
		total += got[w]
		s += sum[w]
	}
	if total != n || s != n*(n+1)/2 {
		fmt.Fprintf(os.Stderr, "go: %d items arrived, want %d\n", total, n)
		os.Exit(1)
	}
	fmt.Printf("# cap %d: %d items in %.4f s (CPU %.4f s); per worker %d %d %d\n", capacity, n, dt, dc, got[0], got[1], got[2])
	return float64(n) / dt, float64(n) / dc
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func report(key, unit string, v []float64) {
	fmt.Printf("# %s runs (%s):", key, unit)
	for _, x := range v {
		fmt.Printf(" %.4g", x)
	}
	fmt.Printf("\nresult %s %.6g\n", key, median(v))
}

func main() {
	capacity, n, runs := 3, 200000, 5
	if len(os.Args) > 1 {
		capacity, _ = strconv.Atoi(os.Args[1])
	}
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	if len(os.Args) > 3 {
		runs, _ = strconv.Atoi(os.Args[3])
	}
	if runs < 1 || n < 1 || capacity < 0 {
		fmt.Fprintln(os.Stderr, "usage: toolbox_go CAP [N] [RUNS]")
		os.Exit(2)
	}
	v := make([]float64, runs)
	c := make([]float64, runs)
	for r := 0; r < runs; r++ {
		v[r], c[r] = run(capacity, n)
	}
	key := "go_chan_cap3_ips"
	if capacity != 3 {
		key = "go_chan_capN_ips"
	}
	report(key, "items/s", v)
	report(key+"@cpu", "items per CPU second", c)
}
