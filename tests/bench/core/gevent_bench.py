"""gevent and greenlet peers for the core benchmarks (Debian's python3-gevent).

    python3 gevent_bench.py greenlet [N] [RUNS]   raw greenlet.switch() ping-pong
                                                  (Python loop and call included)
    python3 gevent_bench.py pyloop   [N] [RUNS]   the same loop calling a trivial C
                                                  method: the Python overhead inside
                                                  the greenlet figure
    python3 gevent_bench.py sleep0   [N] [RUNS]   two greenlets ping-pong with
                                                  gevent.sleep(0), through the hub
    python3 gevent_bench.py spawn    [N] [RUNS]   gevent.spawn(f).join(), one at a time
    python3 gevent_bench.py batch    [N] [ROUNDS] [spawn(f) x N] + joinall; round 1 cold
    python3 gevent_bench.py mem      [N]          N greenlets blocked in gevent.sleep

Output: "result <key> <value>" lines, details after '#', like the C programs.
"""
import os
import statistics
import sys
import time

import gevent
import greenlet


def arg(i, default):
    return int(sys.argv[i]) if len(sys.argv) > i else default


def report(key, values, unit):
    print("# %s runs (%s): %s" % (key, unit, " ".join("%.2f" % v for v in values)))
    print("result %s %.3f" % (key, statistics.median(values)), flush=True)


def now():
    """Wall and process CPU time, so that every figure is given both ways."""
    return time.monotonic_ns(), time.process_time_ns()


def lap(t0, ops):
    t1 = now()
    return (t1[0] - t0[0]) / ops, (t1[1] - t0[1]) / ops


def report2(key, laps, unit):
    report(key, [w for w, _ in laps], unit)
    report(key + "@cpu", [c for _, c in laps], unit)


def bench_greenlet(n, runs):
    laps = []
    for _ in range(runs):
        main = greenlet.getcurrent()

        def pong():
            while True:
                main.switch()

        g = greenlet.greenlet(pong)
        t0 = now()
        for _ in range(n):
            g.switch()
        laps.append(lap(t0, 2 * n))
        g.throw(greenlet.GreenletExit)
    report2("greenlet_switch_ns", laps, "ns/switch")


def bench_pyloop(n, runs):
    laps = []
    x = []
    for _ in range(runs):
        f = x.__len__
        t0 = now()
        for _ in range(n):
            f()
        laps.append(lap(t0, n))
    report2("python_loop_call_ns", laps, "ns/iteration")


def bench_sleep0(n, runs):
    laps = []

    def body():
        for _ in range(n):
            gevent.sleep(0)

    for _ in range(runs):
        t0 = now()
        gevent.joinall([gevent.spawn(body), gevent.spawn(body)])
        laps.append(lap(t0, 2 * n))
    report2("gevent_sleep0_ns", laps, "ns/yield")


def nothing():
    return None


def bench_spawn(n, runs):
    for _ in range(1000):
        gevent.spawn(nothing).join()
    laps = []
    for _ in range(runs):
        t0 = now()
        for _ in range(n):
            gevent.spawn(nothing).join()
        laps.append(lap(t0, n))
    report2("gevent_spawn_seq_ns", laps, "ns/greenlet")


def bench_batch(n, rounds):
    laps = []
    for _ in range(rounds):
        t0 = now()
        gs = [gevent.spawn(nothing) for _ in range(n)]
        gevent.joinall(gs)
        laps.append(lap(t0, n))
        del gs
    for i, what in ((0, ""), (1, ", CPU time")):
        print("# gevent_batch rounds%s (ns/greenlet): %s"
              % (what, " ".join("%.1f" % lp[i] for lp in laps)))
    for i, suffix in ((0, ""), (1, "@cpu")):
        print("result gevent_batch_cold_ns%s %.3f" % (suffix, laps[0][i]))
        if rounds > 1:
            print("result gevent_batch_warm_ns%s %.3f"
                  % (suffix, statistics.median(lp[i] for lp in laps[1:])))
    sys.stdout.flush()


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def bench_mem(n):
    gevent.sleep(0)  # the hub exists before the baseline
    before = [status_kib(k) for k in ("VmRSS", "VmSize", "VmPTE")]
    gs = [gevent.spawn(gevent.sleep, 3600) for _ in range(n)]
    gevent.sleep(0)  # every greenlet runs once and blocks in its sleep
    after = [status_kib(k) for k in ("VmRSS", "VmSize", "VmPTE")]
    print("# gevent_mem: VmRSS %d -> %d KiB, VmSize %d -> %d KiB, VmPTE %d -> %d KiB, n=%d"
          % (before[0], after[0], before[1], after[1], before[2], after[2], n))
    for name, b, a in zip(("rss", "vmsize", "pte"), before, after):
        print("result gevent_mem_%s_kib %.3f" % (name, (a - b) / n))
    sys.stdout.flush()
    # Killing them takes ~0.5 ms per greenlet on these VMs (measured: 25 s
    # for 50,000), longer than the rest of the suite, and the interpreter's
    # own shutdown would do the same: end the process at once, as the Go
    # peer does.
    os._exit(0)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "greenlet":
        bench_greenlet(arg(2, 1000000), arg(3, 5))
    elif mode == "pyloop":
        bench_pyloop(arg(2, 1000000), arg(3, 5))
    elif mode == "sleep0":
        bench_sleep0(arg(2, 100000), arg(3, 5))
    elif mode == "spawn":
        bench_spawn(arg(2, 30000), arg(3, 5))
    elif mode == "batch":
        bench_batch(arg(2, 100000), arg(3, 4))
    elif mode == "mem":
        bench_mem(arg(2, 100000))
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
