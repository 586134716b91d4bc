#!/usr/bin/env python3
"""The soak's faulty upstreams: one HTTP/1.1 server per fault on HOST, ports 9000-9007, each
answering every request its own wrong way (as proxy/fault_matrix_test.cc's backends):
9000 refuses (nothing listens), 9001 answers 200, 9002 resets before the answer, 9003 resets
mid-body, 9004 never answers (holds the connection 30 s at most), 9005 answers garbage,
9006 answers after 300 ms, 9007 closes after its head. Runs until killed."""
import asyncio
import socket
import struct
import sys

BODY = b"x" * 100000


async def serve(reader, writer, fault):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
            if fault == 9001:
                writer.write(answer + BODY)
            elif fault == 9002:
                reset(writer)
                return
            elif fault == 9003:
                writer.write(answer + BODY[: len(BODY) // 2])
                await writer.drain()
                reset(writer)
                return
            elif fault == 9004:
                await asyncio.sleep(30)
                return
            elif fault == 9005:
                writer.write(b"\x00\x01garbage\r\n\r\n")
                await writer.drain()
                writer.close()
                return
            elif fault == 9006:
                await asyncio.sleep(0.3)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            elif fault == 9007:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
                await writer.drain()
                writer.close()
                return
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, ValueError):
        pass
    finally:
        writer.close()


def reset(writer):
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def main():
    host = sys.argv[1]
    servers = []
    for port in range(9001, 9008):
        servers.append(await asyncio.start_server(lambda r, w, p=port: serve(r, w, p), host, port))
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
