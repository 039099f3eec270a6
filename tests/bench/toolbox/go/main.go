// Go's side of the boss/worker throughput benchmark: one producer goroutine
// sends N ints into a buffered channel, three worker goroutines range over
// it; the producer closes it at the end. Run with GOMAXPROCS=1.
//
//	toolbox_go CAP [N] [RUNS]    items per second, median of RUNS
package main

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"
)

const workers = 3

func run(capacity, n int) float64 {
	ch := make(chan int, capacity)
	var wg sync.WaitGroup
	var got [workers]int
	var sum [workers]int
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
	total, s := 0, 0
	for w := 0; w < workers; w++ {
		total += got[w]
		s += sum[w]
	}
	if total != n || s != n*(n+1)/2 {
		fmt.Fprintf(os.Stderr, "go: %d items arrived, want %d\n", total, n)
		os.Exit(1)
	}
	fmt.Printf("# cap %d: %d items in %.4f s; per worker %d %d %d\n", capacity, n, dt, got[0], got[1], got[2])
	return float64(n) / dt
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
	v := make([]float64, runs)
	for r := 0; r < runs; r++ {
		v[r] = run(capacity, n)
	}
	for r := 0; r < runs; r++ {
		fmt.Printf("# run %d: %.4g items/s\n", r+1, v[r])
	}
	sort.Float64s(v)
	median := v[runs/2]
	if runs%2 == 0 {
		median = (v[runs/2-1] + v[runs/2]) / 2
	}
	key := "go_chan_cap3_ips"
	if capacity != 3 {
		key = "go_chan_capN_ips"
	}
	fmt.Printf("result %s %.6g\n", key, median)
}
