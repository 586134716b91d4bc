#!/usr/bin/env python3
"""Idle keep-alive clients against one proxy, and what they cost it.

For each count N: opens N connections to HOST:PORT, sends one request on each and reads its
answer, lets them idle IDLE seconds, reads the proxy's RSS (/proc/PID/status), closes them all,
waits SETTLE seconds and reads it again. Prints one row per N:
  N  rss_before_kb  rss_idle_kb  bytes_per_connection  rss_after_close_kb
Bounded: every connect, send and read has a timeout; at most the counts given."""
import asyncio
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def one(host, port, request, deadline):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), deadline)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), deadline)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await asyncio.wait_for(reader.readexactly(length), deadline)
    return writer


async def wave(host, port, pid, n, idle, settle):
    request = f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    before = rss_kb(pid)
    writers = []
    # In batches, so the proxy's accept queue is never the limit.
    for start in range(0, n, 500):
        batch = [one(host, port, request, 10) for _ in range(min(500, n - start))]
        writers += await asyncio.gather(*batch)
    await asyncio.sleep(idle)
    during = rss_kb(pid)
    for w in writers:
        w.close()
    await asyncio.gather(*(w.wait_closed() for w in writers), return_exceptions=True)
    await asyncio.sleep(settle)
    after = rss_kb(pid)
    per = (during - before) * 1024 / n
    print(f"{n:6d} {before:10d} {during:10d} {per:10.0f} {after:10d}", flush=True)


def main():
    host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    counts = [int(c) for c in sys.argv[4].split(",")]
    idle, settle = float(sys.argv[5]), float(sys.argv[6])
    for n in counts:
        asyncio.run(wave(host, port, pid, n, idle, settle))


if __name__ == "__main__":
    main()
