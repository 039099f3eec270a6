"""Python programs for the shim's transparency check (transparency-test.sh).

Each mode prints only what is deterministic (results, errno names, booleans
with generous bounds), so that a run under green-run must print exactly the
same bytes as a run without it:

    /usr/bin/python3 transparency.py sockets|select|sleep|names|subprocess|signals
    /usr/bin/python3 transparency.py servers HTTP_PORT REDIS_PORT CLOSED_PORT
"""
import errno
import hashlib
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time


def sockets():
    # A thread-per-connection echo server and clients on threads: the
    # threads have no hub, so every call of theirs is libc's.
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    port = srv.getsockname()[1]

    def serve_one(c):
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                c.sendall(data)

    def accept_loop():
        for _ in range(4):
            c, _ = srv.accept()
            threading.Thread(target=serve_one, args=(c,)).start()

    acceptor = threading.Thread(target=accept_loop)
    acceptor.start()
    results = [None] * 4

    def client(i):
        payload = bytes((i * 7 + k) % 256 for k in range(1 << 20))
        with socket.create_connection(("127.0.0.1", port)) as c:
            sender = threading.Thread(target=c.sendall, args=(payload,))
            sender.start()
            got = bytearray()
            while len(got) < len(payload):
                got += c.recv(1 << 16)
            sender.join()
            results[i] = hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acceptor.join()
    srv.close()
    print("echo of 1 MiB on 4 connections:", results)

    # A receive timeout, a refused connection, a non-blocking receive.
    a, b = socket.socketpair()
    a.settimeout(0.2)
    t0 = time.monotonic()
    try:
        a.recv(1)
        print("recv with timeout: returned?")
    except socket.timeout as e:
        print("recv with timeout:", type(e).__name__, e, time.monotonic() - t0 >= 0.19)
    b.setblocking(False)
    try:
        b.recv(1)
    except BlockingIOError as e:
        print("non-blocking recv:", errno.errorcode[e.errno])
    a.setblocking(True)
    a.sendall(b"hello")
    print("after setblocking(True):", b.recv(5))
    a.close()
    b.close()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    cport = closed.getsockname()[1]
    closed.close()
    try:
        socket.create_connection(("127.0.0.1", cport), timeout=2)
    except OSError as e:
        print("connect to a closed port:", type(e).__name__, errno.errorcode[e.errno])
    # UDP
    u1 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u2 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u1.bind(("127.0.0.1", 0))
    u2.sendto(b"datagram", u1.getsockname())
    data, addr = u1.recvfrom(100)
    print("udp:", data, addr[1] == u2.getsockname()[1])
    u1.close()
    u2.close()


def select_mode():
    r, w = os.pipe()
    print("select on an empty pipe, 0.1 s:", select.select([r], [], [], 0.1))
    print("select for writing:", select.select([], [w], [], 1) == ([], [w], []))
    os.write(w, b"x" * 10)
    print("select readable:", select.select([r], [], [], 1)[0] == [r])
    p = select.poll()
    p.register(r, select.POLLIN)
    print("poll:", p.poll(1000) == [(r, select.POLLIN)])
    ep = select.epoll()
    ep.register(r, select.EPOLLIN)
    print("epoll:", ep.poll(1) == [(r, select.EPOLLIN)])
    os.read(r, 10)
    t0 = time.monotonic()
    print("epoll timeout:", ep.poll(0.1), time.monotonic() - t0 >= 0.09)
    ep.close()
    sel = selectors.DefaultSelector()
    a, b = socket.socketpair()
    sel.register(a, selectors.EVENT_READ, "a")
    threading.Timer(0.1, b.send, args=(b"late",)).start()
    events = sel.select(timeout=5)
    print("selector:", [(k.data, m) for k, m in events], a.recv(10))
    sel.close()
    os.close(w)
    print("select on a closed pipe's reader:", select.select([r], [], [], 1)[0] == [r], os.read(r, 1))
    os.close(r)
    try:
        select.select([r], [], [], 0)
    except OSError as e:
        print("select on a closed fd:", errno.errorcode[e.errno])
    a.close()
    b.close()


def sleep_mode():
    for s in (0.0, 0.01, 0.1, 0.25):
        t0 = time.monotonic()
        time.sleep(s)
        dt = time.monotonic() - t0
        print("time.sleep(%g): at least that long: %s, under 2 s: %s" % (s, dt >= s, dt < 2 + s))
    t0 = time.monotonic()
    threading.Event().wait(0.1)
    print("Event.wait(0.1) timed out on time:", time.monotonic() - t0 >= 0.09)


def names():
    def show(host, **kw):
        what = ", ".join([repr(host)] + ["%s=%s" % (k, getattr(v, "name", v)) for k, v in kw.items()])
        try:
            res = sorted(set((f, t, a[0]) for f, t, _, _, a in socket.getaddrinfo(host, 80, **kw)))
            print("getaddrinfo(%s):" % what, [(f.name, t.name, a) for f, t, a in res])
        except socket.gaierror as e:
            print("getaddrinfo(%s): gaierror %s" % (what, e.errno))

    show("localhost")
    show("localhost", family=socket.AF_INET, type=socket.SOCK_STREAM)
    show("127.0.0.1", type=socket.SOCK_DGRAM)
    show("::1", family=socket.AF_INET6)
    show("no-such-host.invalid.", flags=socket.AI_NUMERICHOST)
    print("gethostbyname('localhost'):", socket.gethostbyname("localhost"))
    print("getnameinfo:", socket.getnameinfo(("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV))


def subprocess_mode():
    big = bytes(range(256)) * 4096  # 1 MiB through a pipe both ways
    out = subprocess.run(["cat"], input=big, capture_output=True)
    print("cat of 1 MiB:", out.returncode, out.stdout == big, out.stderr)
    p = subprocess.run(["sh", "-c", "echo out; echo err >&2; exit 3"], capture_output=True)
    print("sh:", p.returncode, p.stdout, p.stderr)
    print("check_output:", subprocess.check_output(["printf", "%s-", "a", "b"]))
    try:
        subprocess.run(["sleep", "5"], timeout=0.2)
    except subprocess.TimeoutExpired as e:
        print("timeout:", type(e).__name__)
    p1 = subprocess.Popen(["seq", "1", "20000"], stdout=subprocess.PIPE)
    p2 = subprocess.Popen(["sort", "-rn"], stdin=p1.stdout, stdout=subprocess.PIPE)
    p1.stdout.close()
    top = p2.communicate()[0].split()[:3]
    print("pipeline:", top, p1.wait(), p2.returncode)
    p = subprocess.Popen(["sh", "-c", "kill -TERM $$"])
    print("killed child:", p.wait())
    try:
        subprocess.run(["/nonexistent/program"])
    except FileNotFoundError as e:
        print("missing program:", errno.errorcode[e.errno])


def signals():
    # A blocking recv interrupted by a signal whose handler raises: the
    # exception comes out of recv; a handler that returns lets recv resume
    # (PEP 475), and the data sent later arrives.
    class Alarm(Exception):
        pass

    def raising(signum, frame):
        raise Alarm()

    a, b = socket.socketpair()
    signal.signal(signal.SIGALRM, raising)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        a.recv(1)
    except Alarm:
        print("recv interrupted by a raising handler")
    hits = []
    signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))
    threading.Timer(0.3, b.send, args=(b"z",)).start()
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    print("recv resumed after a returning handler:", a.recv(1), hits == [signal.SIGALRM])
    signal.signal(signal.SIGALRM, raising)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        time.sleep(2)
    except Alarm:
        print("time.sleep interrupted by a raising handler")
    a.close()
    b.close()


def servers(http_port, redis_port, closed_port):
    import http.client

    c = http.client.HTTPConnection("127.0.0.1", int(http_port), timeout=5)
    for path in ("/hello.txt", "/missing", "/slow?s=0.1&id=5", "/rand.bin"):
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        print("GET %s: %d %s, %d bytes, sha256 %s" % (path, r.status, r.reason, len(body),
                                                    hashlib.sha256(body).hexdigest()[:16]))
    c.close()
    with socket.create_connection(("127.0.0.1", int(redis_port))) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$18\r\ntransparency:py:k\r\n$5\r\nvalue\r\n"
                  b"*2\r\n$3\r\nGET\r\n$18\r\ntransparency:py:k\r\n*1\r\n$4\r\nPING\r\n")
        want = b"+OK\r\n$5\r\nvalue\r\n+PONG\r\n"
        got = b""
        while len(got) < len(want):
            got += s.recv(100)
        print("redis over a raw socket:", got)
    try:
        socket.create_connection(("127.0.0.1", int(closed_port)), timeout=2)
    except ConnectionRefusedError as e:
        print("closed port:", errno.errorcode[e.errno])


if __name__ == "__main__":
    modes = {"sockets": sockets, "select": select_mode, "sleep": sleep_mode, "names": names,
             "subprocess": subprocess_mode, "signals": signals,
             "servers": lambda: servers(*sys.argv[2:5])}
    modes[sys.argv[1]]()
