# A ThreadingHTTPServer (a thread per connection) on 127.0.0.1: writes its
# port to argv[1], serves until argv[2] requests have been answered, then
# shuts down and prints what it served. Its output does not depend on
# scheduling, so it is the same natively and under green-run --threads.
import hashlib
import http.server
import sys
import threading

port_file, want = sys.argv[1], int(sys.argv[2])
lock = threading.Lock()
served = {"n": 0, "paths": set()}
done = threading.Event()
BODY = b"".join(b"line %05d of the body\n" % i for i in range(2000))

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = BODY if self.path.startswith("/big") else b"hello %s\n" % self.path.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with lock:
            served["n"] += 1
            served["paths"].add(self.path)
            if served["n"] == want:
                done.set()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write("%d\n" % server.server_address[1])
import os
os.rename(port_file + ".tmp", port_file)
runner = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
runner.start()
done.wait(120)
server.shutdown()
runner.join()
server.server_close()
print("served:", served["n"], "distinct paths:", len(served["paths"]))
print("big body sha256:", hashlib.sha256(BODY).hexdigest()[:16])
