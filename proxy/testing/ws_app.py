#!/usr/bin/python3
"""A WebSocket server and client for tern-proxy's upgrade tests (Debian's python3-websockets).

  ws_app.py serve HOST PORT NAME   /echo echoes each message as "NAME:<message>"; /greet sends
                                   "hello from NAME" first, then echoes; /refuse answers 403
                                   without upgrading; /close closes (1000) right after the
                                   handshake; runs until killed
  ws_app.py call URL               connects (5 s budget), prints one line: what came back
                                   ("a | b | c"), "status N" for a refused upgrade, "closed N",
                                   or "error <kind>"
"""
import asyncio
import http
import sys

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatusCode


def serve(host, port, name):
    async def handler(ws, path=None):
        path = path or ws.path
        if path == "/close":
            await ws.close(1000, "bye")
            return
        if path == "/greet":
            await ws.send("hello from " + name)
        async for message in ws:
            await ws.send(name + ":" + (message if len(message) < 100 else "%d bytes" % len(message)))

    async def process_request(path, headers):
        if path == "/refuse":
            return (http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"refused\n")
        return None

    async def main():
        async with websockets.serve(handler, host, int(port), process_request=process_request, max_size=None):
            print("serving", flush=True)
            await asyncio.Future()

    asyncio.run(main())


async def call(url):
    out = []
    try:
        async with websockets.connect(url, open_timeout=5, max_size=None) as ws:
            if url.endswith("/greet"):
                out.append(await asyncio.wait_for(ws.recv(), 5))
            if url.endswith("/close"):
                try:
                    await asyncio.wait_for(ws.recv(), 5)
                except ConnectionClosed as e:
                    out.append("closed %d" % e.rcvd.code if e.rcvd else "closed")
            else:
                for i in range(3):
                    await ws.send("ping%d" % i)
                    out.append(await asyncio.wait_for(ws.recv(), 5))
                await ws.send("x" * (1 << 20))  # a message far larger than any buffer on the way
                out.append(await asyncio.wait_for(ws.recv(), 5))
        print(" | ".join(out))
    except InvalidStatusCode as e:
        print("status %d" % e.status_code)
    except Exception as e:  # noqa: BLE001 - the test reads the kind
        print("error %s %s" % (type(e).__name__, e))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(*sys.argv[2:5])
    else:
        asyncio.run(call(sys.argv[2]))
