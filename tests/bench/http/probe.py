"""Helpers of suite_http.sh (any python3, stdlib only; loopback only).

    probe.py port                    prints a free TCP port on 127.0.0.1
    probe.py check PORT PID [SECS]   waits until the server (process PID)
                                     answers GET / on 127.0.0.1:PORT with
                                     200 and "Hello, World!" on a keep-alive
                                     connection, twice; exit 0 when it does,
                                     1 with the reason on stderr otherwise
"""
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"Hello, World!"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock):
    """One response: headers, then Content-Length bytes of body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("connection closed before the headers ended")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ValueError("no Content-Length: %r" % head)
    while len(rest) < length:
        chunk = sock.recv(4096)
        if not chunk:
            raise ValueError("connection closed inside the body")
        rest += chunk
    return lines[0], rest[:length]


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def check(port, pid, secs):
    deadline = time.monotonic() + secs
    last = "not listening"
    while time.monotonic() < deadline:
        if not alive(pid):
            sys.exit("server (pid %d) exited before it answered" % pid)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                for _ in range(2):  # keep-alive: the same connection twice
                    s.sendall(REQUEST)
                    status, body = read_response(s)
                    if not status.startswith(b"HTTP/1.1 200") or body != BODY:
                        sys.exit("wrong answer: %r %r" % (status, body))
            return
        except (OSError, ValueError) as e:
            last = str(e)
            time.sleep(0.05)
    sys.exit("no answer on 127.0.0.1:%d within %g s (%s)" % (port, secs, last))


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "port":
        print(free_port())
    elif len(sys.argv) in (4, 5) and sys.argv[1] == "check":
        check(int(sys.argv[2]), int(sys.argv[3]),
              float(sys.argv[4]) if len(sys.argv) == 5 else 10.0)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
