#!/usr/bin/python3
"""A gRPC echo server and client for tern-proxy's tests, with no generated code: methods are
registered generically and messages are raw bytes.

  grpc_echo.py serve ADDRESS NAME   serve tern.Echo until killed
  grpc_echo.py call TARGET          call every method once and print one line per result
"""
import sys
from concurrent import futures

import grpc


def ident(b):
    return b


def serve(address, name):
    def unary(request, context):
        context.set_trailing_metadata((("x-served-by", name),))
        return name.encode() + b":" + request

    def server_stream(request, context):
        n = int(request.decode())
        for i in range(n):
            yield f"{name}:{i}".encode()
        context.set_trailing_metadata((("x-count", str(n)),))

    def client_stream(requests, context):
        return f"{name}:{sum(len(m) for m in requests)}".encode()

    def bidi(requests, context):
        for m in requests:
            yield name.encode() + b":" + m

    def fail(request, context):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "refused by " + name)

    calls = {"flaky": 0}

    def flaky(request, context):  # every other call is UNAVAILABLE (a trailers-only answer)
        calls["flaky"] += 1
        if calls["flaky"] % 2 == 1:
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        return name.encode() + b":steady"

    handler = grpc.method_handlers_generic_handler("tern.Echo", {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, ident, ident),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream, ident, ident),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, ident, ident),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi, ident, ident),
        "Fail": grpc.unary_unary_rpc_method_handler(fail, ident, ident),
        "Flaky": grpc.unary_unary_rpc_method_handler(flaky, ident, ident),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(address)
    server.start()
    print("serving", flush=True)
    server.wait_for_termination()


def call(target):
    channel = grpc.insecure_channel(target)
    method = lambda kind, name: getattr(channel, kind)("/tern.Echo/" + name, request_serializer=ident,
                                                       response_deserializer=ident)
    response, c = method("unary_unary", "Unary").with_call(b"hello", timeout=5)
    print("unary", response.decode(), dict(c.trailing_metadata()).get("x-served-by"), flush=True)
    c = method("unary_stream", "ServerStream")(b"50", timeout=5)
    messages = [m.decode() for m in c]
    print("server_stream", len(messages), messages[-1], dict(c.trailing_metadata()).get("x-count"), flush=True)
    response = method("stream_unary", "ClientStream")(iter([b"x" * 1000] * 300), timeout=10)
    print("client_stream", response.decode(), flush=True)
    replies = [m.decode() for m in method("stream_stream", "Bidi")(iter([b"a", b"b", b"c"]), timeout=5)]
    print("bidi", ",".join(replies), flush=True)
    try:
        method("unary_unary", "Fail")(b"x", timeout=5)
        print("fail none", flush=True)
    except grpc.RpcError as e:
        print("fail", e.code().name, e.details(), flush=True)
    answered = 0
    for _ in range(4):
        try:
            method("unary_unary", "Flaky")(b"x", timeout=5)
            answered += 1
        except grpc.RpcError:
            pass
    print("flaky", answered, "of 4", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3])
    else:
        call(sys.argv[2])
