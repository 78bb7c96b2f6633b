#!/usr/bin/env python3
"""A stand-in OpenLineage HTTP endpoint for tests: listens on 127.0.0.1 (an ephemeral
port, printed on the first line of stdout), appends each POST body as one line to
OUT_FILE and answers STATUS. Exits after SECONDS at the latest, or when stdin closes."""
import http.server
import sys
import threading

out_file, status, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])


class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with open(out_file, "ab") as f:
            f.write(self.headers.get("Content-Type", "").encode() + b"\t" + self.path.encode()
                    + b"\t" + body + b"\n")
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
sys.stdout.write("%d\n" % server.server_address[1])  # one write, even unbuffered
sys.stdout.flush()
threading.Thread(target=server.serve_forever, daemon=True).start()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
stop.wait(seconds)
server.shutdown()
