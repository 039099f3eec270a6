"""The gevent peer: CONC greenlets, each with its own requests.Session (so
its own keep-alive connection), GET the URL in a loop until N requests have
finished in all, with the standard library patched by monkey.patch_all().

    python3 gevent_requests.py URL [N] [CONC] [RUNS]

Each run first makes one warm-up request per greenlet, then times N.
Prints "result curl_gevent_rps <median requests/s>" and
"result curl_gevent_cpu_us <median CPU us per request>" and
"result curl_gevent_rps@cpu <requests per second of its own CPU time>".
"""
from gevent import monkey

monkey.patch_all()

import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import requests  # noqa: E402


def cpu_us():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return (ru.ru_utime + ru.ru_stime) * 1e6


def main():
    url = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    conc = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    sessions = [requests.Session() for _ in range(conc)]
    state = {"left": 0, "errors": 0, "bytes": 0}

    def client(session):
        while state["left"] > 0:
            state["left"] -= 1
            r = session.get(url)
            state["bytes"] += len(r.content)
            if r.status_code != 200:
                state["errors"] += 1

    def run(count):
        state["left"] = count
        gevent.joinall([gevent.spawn(client, s) for s in sessions])

    rps, cpu = [], []
    for _ in range(runs):
        run(conc)  # warm-up: the keep-alive connections
        state["errors"] = 0
        c0, t0 = cpu_us(), time.monotonic()
        run(n)
        dt = time.monotonic() - t0
        rps.append(n / dt)
        cpu.append((cpu_us() - c0) / n)
        if state["errors"]:
            print("gevent_requests: %d failed requests" % state["errors"], file=sys.stderr)
            return 1
    print("# %d GETs of %s per run, %d greenlets (a Session each), %d bytes of bodies in all"
          % (n, url, conc, state["bytes"]))
    print("# curl_gevent_rps runs (requests/s): " + " ".join("%.2f" % x for x in rps))
    print("result curl_gevent_rps %.3f" % statistics.median(rps))
    print("# curl_gevent_cpu_us runs (CPU us per request): " + " ".join("%.2f" % x for x in cpu))
    print("result curl_gevent_cpu_us %.3f" % statistics.median(cpu))
    print("result curl_gevent_rps@cpu %.3f" % statistics.median([1e6 / c for c in cpu]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
