"""gevent's side of the boss/worker throughput benchmark.

The gevent tutorial's "Assigning Jobs in Queue": a boss greenlet puts N
items into a gevent.queue.Queue, three workers iterate over it; the boss
ends each worker with a StopIteration sentinel (iteration over a gevent
Queue stops at it).

    gevent_queue.py MAXSIZE [N] [RUNS]    items per second (wall clock, and per
                                          second of CPU time: KEY@cpu), medians;
                                          MAXSIZE 0: Queue()
"""
import sys
import time

import gevent
from gevent.queue import Queue

WORKERS = 3


def run(maxsize, n):
    q = Queue(maxsize=maxsize) if maxsize else Queue()
    got = [0] * WORKERS
    total = [0] * WORKERS

    def boss():
        for i in range(1, n + 1):
            q.put(i)
        for _ in range(WORKERS):
            q.put(StopIteration)

    def worker(k):
        c = s = 0
        for item in q:
            c += 1
            s += item
        got[k] = c
        total[k] = s

    t0, c0 = time.perf_counter(), time.process_time()
    gevent.joinall([gevent.spawn(boss)] + [gevent.spawn(worker, k) for k in range(WORKERS)])
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    if sum(got) != n or sum(total) != n * (n + 1) // 2:
        sys.exit("gevent: %d items arrived, want %d" % (sum(got), n))
    print("# maxsize %d: %d items in %.4f s (CPU %.4f s); per worker %s" % (maxsize, n, dt, dc, got))
    return n / dt, n / dc


def report(key, unit, v):
    print("# %s runs (%s): %s" % (key, unit, " ".join("%.4g" % x for x in v)))
    s = sorted(v)
    n = len(s)
    median = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    print("result %s %.6g" % (key, median))


def main():
    maxsize = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 200000
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    v = [run(maxsize, n) for _ in range(runs)]
    key = "gevent_queue_%s_ips" % ("bounded" if maxsize else "unbounded")
    report(key, "items/s", [x[0] for x in v])
    report(key + "@cpu", "items per CPU second", [x[1] for x in v])


main()
