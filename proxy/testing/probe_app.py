#!/usr/bin/python3
"""An app with health checks, for the sidecar contract test: it serves what a pod's probes
check, and answers so that what reaches it can be told apart.

  probe_app.py SPEC.json
  SPEC: {"http": [ports], "https": [ports], "tcp": [ports], "grpc": [ports], "cert": F, "key": F}

HTTP(S) GET:  /health/ready -> 503 (an app that is up but not ready); /ready -> 200 only when the
              request carries "X-Probe: kubelet" (else 412); anything else -> 200. Every answer
              names the User-Agent it got.
TCP:          accepts and closes.
gRPC:         grpc.health.v1.Health/Check: service "health" (or "") SERVING, any other NOT_SERVING.
Runs until killed.
"""
import http.server
import json
import socket
import ssl
import sys
import threading
from concurrent import futures

import grpc


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health/ready":
            status = 503
        elif self.path == "/ready":
            status = 200 if self.headers.get("X-Probe") == "kubelet" else 412
        else:
            status = 200
        body = ("user-agent: %s\n" % self.headers.get("User-Agent", "")).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve_http(port, tls=None):
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls[0], tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def serve_tcp(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)

    def loop():
        while True:
            c, _ = s.accept()
            c.close()

    threading.Thread(target=loop, daemon=True).start()


def health_check(request, context):
    # HealthCheckRequest{service = 1}: tag 0x0a, one-byte length (short names only here).
    service = request[2:2 + request[1]].decode() if len(request) >= 2 and request[0] == 0x0A else ""
    return b"\x08\x01" if service in ("", "health") else b"\x08\x02"


def serve_grpc(ports):
    if not ports:
        return None
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    ident = lambda b: b
    handler = grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(health_check, request_deserializer=ident, response_serializer=ident)})
    server.add_generic_rpc_handlers((handler,))
    for port in ports:
        server.add_insecure_port("0.0.0.0:%d" % port)
    server.start()
    return server


def main():
    spec = json.load(open(sys.argv[1]))
    for port in spec.get("http", []):
        serve_http(port)
    for port in spec.get("https", []):
        serve_http(port, (spec["cert"], spec["key"]))
    for port in spec.get("tcp", []):
        serve_tcp(port)
    keep = serve_grpc(spec.get("grpc", []))
    print("serving", flush=True)
    threading.Event().wait()
    del keep


if __name__ == "__main__":
    main()
