"""gevent peer of the HTTP benchmark: gevent's StreamServer with minimal
parsing (no gevent.pywsgi), one process, one greenlet per connection.

    python3 gevent_hello.py PORT     serves GET / on 127.0.0.1:PORT until killed

Every complete request ("\\r\\n\\r\\n") in what was received gets one
response; pipelined ones are answered in one sendall.
"""
import sys

from gevent.server import StreamServer

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n"
            b"Content-Type: text/plain\r\n\r\nHello, World!")


def handle(sock, _address):
    pending = b""
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                break
            pending += data
            count = pending.count(b"\r\n\r\n")
            if count:
                pending = pending[pending.rfind(b"\r\n\r\n") + 4:]
                sock.sendall(RESPONSE * count)
            elif len(pending) > 4096:
                break  # a header larger than the C servers accept
    except OSError:
        pass  # wrk resets its connections when it stops: not an error here
    sock.close()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gevent_hello.py PORT")
    server = StreamServer(("127.0.0.1", int(sys.argv[1])), handle, backlog=4096)
    server.serve_forever()


if __name__ == "__main__":
    main()
