#!/usr/bin/env python3
"""The soak's misbehaving side: for DURATION seconds, requests at random to the fault services
(cluster IPs 10.96.1.1-8, each answered by one fault of bench/soak_faults.py) over HTTP/1.1 and
HTTP/2 (nghttp), well-formed or not: pipelined, cut off mid-request, garbage, half-closed.
Prints one line at the end: requests made and how they ended. Every socket has a timeout; the
loop is bounded by the duration and a request count."""
import random
import socket
import subprocess
import sys
import time

FAULT_IPS = [f"10.96.1.{i}" for i in range(1, 9)]


def http1(ip, rng):
    s = socket.create_connection((ip, 8080), timeout=1)
    try:
        kind = rng.randrange(6)
        if kind == 0:
            s.sendall(b"GET /a HTTP/1.1\r\nHost: f\r\n\r\nGET /b HTTP/1.1\r\nHost: f\r\n\r\n")  # pipelined
        elif kind == 1:
            s.sendall(b"POST /p HTTP/1.1\r\nHost: f\r\nContent-Length: 100\r\n\r\nshort")  # cut off mid-body
        elif kind == 2:
            s.sendall(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300))))  # garbage
        elif kind == 3:
            s.sendall(b"GET /half HTTP/1.1\r\nHost: f\r\n\r\n")
            s.shutdown(socket.SHUT_WR)  # half-closed with its request
        elif kind == 4:
            s.sendall(b"PUT /c HTTP/1.1\r\nHost: f\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        else:
            s.sendall(b"GET /big HTTP/1.1\r\nHost: f\r\n\r\n")
        while s.recv(65536):
            pass
        return "ended"
    except (socket.timeout, TimeoutError):
        return "timeout"
    except OSError:
        return "reset"
    finally:
        s.close()


def http2(ip, rng):
    args = ["nghttp", "--timeout=2s", "-m", str(rng.randrange(1, 6)), f"http://{ip}:8080/h2"]
    try:
        r = subprocess.run(args, capture_output=True, timeout=10)
        return "ended" if r.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        return "timeout"


def main():
    duration = float(sys.argv[1])
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    end = time.monotonic() + duration
    counts = {}
    for _ in range(10_000_000):
        if time.monotonic() >= end:
            break
        ip = rng.choice(FAULT_IPS)
        outcome = http2(ip, rng) if rng.random() < 0.2 else http1(ip, rng)
        counts[outcome] = counts.get(outcome, 0) + 1
    total = sum(counts.values())
    print(f"chaos requests: {total} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    main()
