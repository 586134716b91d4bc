#include "proxy/app_prober.h"

#include <nghttp2/nghttp2.h>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/base/ascii.h"
#include "proxy/socket_deadline.h"

namespace tern::proxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using nlohmann::json;
using error_code = boost::system::error_code;

namespace {

constexpr auto kTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kMaxStatusLine = 4096;

Result<uint16_t> PortOf(const json& probe, const std::string& at) {
  const json* port = probe.contains("port") ? &probe["port"] : nullptr;
  if (!port) return Status::Error(at + ".port: is required");
  if (port->is_string()) {
    return Status::Error(at + ".port: named port \"" + port->get<std::string>() +
                         "\" does not name a port of the container");
  }
  if (!port->is_number_integer() || *port < 1 || *port > 65535) {
    return Status::Error(at + ".port: " + port->dump() + " is not a port from 1 to 65535");
  }
  return static_cast<uint16_t>(port->get<int>());
}

// The outcome of a failed step: the timeout's when it struck.
ProbeOutcome Failed(const SocketDeadline& deadline, std::string_view step, const error_code& ec) {
  return {500, deadline.expired() ? "timed out" : std::string(step) + ": " + ec.message()};
}

template <class Stream>
asio::awaitable<ProbeOutcome> ExchangeHttp(Stream& stream, const AppProbe& p, const std::string& authority,
                                           const SocketDeadline& deadline) {
  std::string request = "GET " + p.path + " HTTP/1.1\r\n";
  bool host_set = false;
  for (const auto& [name, value] : p.headers) host_set = host_set || AsciiIEquals(name, "host");
  if (!host_set) request += "Host: " + authority + "\r\n";
  request += "User-Agent: kube-probe/1.28\r\nAccept: */*\r\n";
  for (const auto& [name, value] : p.headers) request += name + ": " + value + "\r\n";
  request += "Connection: close\r\n\r\n";
  auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(request), kTuple);
  if (wec) co_return Failed(deadline, "sending the request", wec);
  std::string in;
  char buf[1024];
  for (;;) {
    if (size_t eol = in.find("\r\n"); eol != std::string::npos) {
      // "HTTP/1.1 200 OK"
      if (in.rfind("HTTP/1.", 0) == 0 && eol >= 12 && in[8] == ' ' && std::isdigit(static_cast<unsigned char>(in[9])) &&
          std::isdigit(static_cast<unsigned char>(in[10])) && std::isdigit(static_cast<unsigned char>(in[11]))) {
        unsigned status = static_cast<unsigned>(std::stoi(in.substr(9, 3)));
        if (status >= 100 && status <= 599) co_return ProbeOutcome{status, "the app answered " + in.substr(9, 3)};
      }
      co_return ProbeOutcome{500, "the app's answer is not HTTP/1.x"};
    }
    if (in.size() > kMaxStatusLine) co_return ProbeOutcome{500, "the app's status line is too long"};
    auto [rec, n] = co_await stream.async_read_some(asio::buffer(buf), kTuple);
    if (rec) co_return Failed(deadline, "reading the answer", rec);
    in.append(buf, n);
  }
}

asio::awaitable<ProbeOutcome> HttpProbe(const AppProbe& p, tcp::endpoint to) {
  tcp::socket socket(co_await asio::this_coro::executor);
  SocketDeadline deadline(socket, p.timeout);
  auto [cec] = co_await socket.async_connect(to, kTuple);
  if (cec) co_return Failed(deadline, "connecting to the app", cec);
  std::string authority = p.host.empty() ? to.address().to_string() : p.host;
  if (to.address().is_v6() && p.host.empty()) authority = "[" + authority + "]";
  authority += ":" + std::to_string(p.port);
  if (!p.https) co_return co_await ExchangeHttp(socket, p, authority, deadline);
  // The kubelet does not verify an HTTPS probe's certificate; neither does this.
  asio::ssl::context tls(asio::ssl::context::tls_client);
  tls.set_verify_mode(asio::ssl::verify_none);
  asio::ssl::stream<tcp::socket&> stream(socket, tls);
  if (!p.host.empty()) SSL_set_tlsext_host_name(stream.native_handle(), p.host.c_str());
  auto [hec] = co_await stream.async_handshake(asio::ssl::stream_base::client, kTuple);
  if (hec) co_return Failed(deadline, "TLS handshake", hec);
  co_return co_await ExchangeHttp(stream, p, authority, deadline);
}

asio::awaitable<ProbeOutcome> TcpProbe(const AppProbe& p, tcp::endpoint to) {
  tcp::socket socket(co_await asio::this_coro::executor);
  SocketDeadline deadline(socket, p.timeout);
  auto [cec] = co_await socket.async_connect(to, kTuple);
  if (cec) co_return Failed(deadline, "connecting to the app", cec);
  co_return ProbeOutcome{200, "connected"};
}

// One grpc.health.v1.Health/Check call over HTTP/2 (prior knowledge, as gRPC servers speak it).
struct GrpcCall {
  std::string request;  // the length-prefixed HealthCheckRequest
  size_t sent = 0;
  std::string response;
  std::string grpc_status, http_status;
  bool closed = false;
  uint32_t reset = 0;
};

std::string HealthCheckRequest(const std::string& service) {
  std::string message;
  if (!service.empty()) {  // field 1 (string): tag 0x0a, varint length, bytes
    message += '\x0a';
    for (size_t n = service.size(); ; n >>= 7) {
      if (n < 0x80) {
        message += static_cast<char>(n);
        break;
      }
      message += static_cast<char>((n & 0x7f) | 0x80);
    }
    message += service;
  }
  std::string framed(5, '\0');  // not compressed, 4-byte big-endian length
  for (int i = 0; i < 4; ++i) framed[1 + i] = static_cast<char>((message.size() >> (8 * (3 - i))) & 0xff);
  return framed + message;
}

nghttp2_session* NewGrpcSession(GrpcCall& call) {
  nghttp2_session_callbacks* cbs;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_header_callback(
      cbs, [](nghttp2_session*, const nghttp2_frame*, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t,
              void* u) {
        auto& c = *static_cast<GrpcCall*>(u);
        std::string_view name(reinterpret_cast<const char*>(n), nl);
        if (name == ":status") c.http_status.assign(reinterpret_cast<const char*>(v), vl);
        if (name == "grpc-status") c.grpc_status.assign(reinterpret_cast<const char*>(v), vl);
        return 0;
      });
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
      cbs, [](nghttp2_session*, uint8_t, int32_t, const uint8_t* d, size_t n, void* u) {
        auto& c = *static_cast<GrpcCall*>(u);
        if (c.response.size() < 4096) c.response.append(reinterpret_cast<const char*>(d), n);
        return 0;
      });
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, int32_t, uint32_t error, void* u) {
    auto& c = *static_cast<GrpcCall*>(u);
    c.closed = true;
    c.reset = error;
    return 0;
  });
  nghttp2_session* session = nullptr;
  nghttp2_session_client_new(&session, cbs, &call);
  nghttp2_session_callbacks_del(cbs);
  return session;
}

asio::awaitable<ProbeOutcome> GrpcProbe(const AppProbe& p, tcp::endpoint to) {
  tcp::socket socket(co_await asio::this_coro::executor);
  SocketDeadline deadline(socket, p.timeout);
  auto [cec] = co_await socket.async_connect(to, kTuple);
  if (cec) co_return Failed(deadline, "connecting to the app", cec);
  GrpcCall call{.request = HealthCheckRequest(p.grpc_service)};
  std::unique_ptr<nghttp2_session, decltype(&nghttp2_session_del)> session(NewGrpcSession(call), &nghttp2_session_del);
  nghttp2_submit_settings(session.get(), NGHTTP2_FLAG_NONE, nullptr, 0);
  std::string authority = to.address().to_string() + ":" + std::to_string(p.port);
  const std::pair<std::string, std::string> fields[] = {
      {":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.health.v1.Health/Check"}, {":authority", authority},
      {"content-type", "application/grpc"}, {"te", "trailers"}, {"user-agent", "kube-probe/1.28"}};
  std::vector<nghttp2_nv> nva;
  for (const auto& [n, v] : fields) {
    nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())),
                   n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
  }
  nghttp2_data_provider body{};
  body.source.ptr = &call;
  body.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source* src,
                          void*) -> ssize_t {
    auto& c = *static_cast<GrpcCall*>(src->ptr);
    size_t n = std::min(length, c.request.size() - c.sent);
    std::memcpy(buf, c.request.data() + c.sent, n);
    c.sent += n;
    if (c.sent == c.request.size()) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return static_cast<ssize_t>(n);
  };
  if (nghttp2_submit_request(session.get(), nullptr, nva.data(), nva.size(), &body, nullptr) < 0) {
    co_return ProbeOutcome{500, "cannot build the health check request"};
  }
  std::string out;
  char in[4096];
  for (int rounds = 0; rounds < 64 && !call.closed; ++rounds) {
    out.clear();
    for (;;) {
      const uint8_t* data = nullptr;
      ssize_t n = nghttp2_session_mem_send(session.get(), &data);
      if (n < 0) co_return ProbeOutcome{500, std::string("HTTP/2: ") + nghttp2_strerror(static_cast<int>(n))};
      if (n == 0) break;
      out.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (!out.empty()) {
      auto [wec, wn] = co_await asio::async_write(socket, asio::buffer(out), kTuple);
      if (wec) co_return Failed(deadline, "sending the health check", wec);
    }
    if (call.closed) break;
    auto [rec, n] = co_await socket.async_read_some(asio::buffer(in), kTuple);
    if (rec) co_return Failed(deadline, "reading the health check's answer", rec);
    if (nghttp2_session_mem_recv(session.get(), reinterpret_cast<const uint8_t*>(in), n) < 0) {
      co_return ProbeOutcome{500, "the app's answer is not HTTP/2"};
    }
  }
  if (!call.closed) co_return ProbeOutcome{500, "the health check did not end"};
  if (call.reset != 0) co_return ProbeOutcome{500, "the app reset the health check (HTTP/2 error " + std::to_string(call.reset) + ")"};
  if (call.grpc_status != "0") {
    co_return ProbeOutcome{500, "grpc-status " + (call.grpc_status.empty() ? std::string("missing") : call.grpc_status)};
  }
  // HealthCheckResponse{status = 1: enum}; SERVING is 1, and 0 (UNKNOWN) is the empty message.
  int status = call.response.size() >= 7 && call.response[5] == '\x08' ? call.response[6] : 0;
  static const char* const kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
  std::string name = status >= 0 && status <= 3 ? kNames[status] : std::to_string(status);
  co_return ProbeOutcome{status == 1 ? 200u : 500u, "health " + name};
}

}  // namespace

Result<std::map<std::string, AppProbe>> ParseAppProbers(std::string_view json_text) {
  json doc = json::parse(json_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return Status::Error("ISTIO_KUBE_APP_PROBERS: not a JSON object");
  std::map<std::string, AppProbe> out;
  for (const auto& [path, entry] : doc.items()) {
    const std::string at = "ISTIO_KUBE_APP_PROBERS[\"" + path + "\"]";
    if (!entry.is_object()) return Status::Error(at + ": not an object");
    AppProbe p;
    if (entry.contains("timeoutSeconds")) {
      const json& t = entry["timeoutSeconds"];
      if (!t.is_number_integer() || t < 1 || t > 3600) return Status::Error(at + ".timeoutSeconds: " + t.dump() + " is not 1 to 3600");
      p.timeout = std::chrono::seconds(t.get<int>());
    }
    if (entry.contains("httpGet") && entry["httpGet"].is_object()) {
      const json& h = entry["httpGet"];
      auto port = PortOf(h, at + ".httpGet");
      if (!port.ok()) return port.status();
      p.kind = AppProbe::Kind::kHttp;
      p.port = *port;
      if (h.contains("path")) {
        if (!h["path"].is_string()) return Status::Error(at + ".httpGet.path: not a string");
        p.path = h["path"].get<std::string>();
        if (p.path.empty() || p.path[0] != '/') p.path = "/" + p.path;  // as the kubelet builds the URL
      }
      if (h.contains("scheme")) {
        std::string scheme = h["scheme"].is_string() ? h["scheme"].get<std::string>() : "";
        if (scheme != "HTTP" && scheme != "HTTPS") return Status::Error(at + ".httpGet.scheme: " + h["scheme"].dump() + " is not HTTP or HTTPS");
        p.https = scheme == "HTTPS";
      }
      if (h.contains("host")) {
        if (!h["host"].is_string()) return Status::Error(at + ".httpGet.host: not a string");
        p.host = h["host"].get<std::string>();
      }
      if (h.contains("httpHeaders")) {
        if (!h["httpHeaders"].is_array()) return Status::Error(at + ".httpGet.httpHeaders: not a list");
        for (size_t i = 0; i < h["httpHeaders"].size(); ++i) {
          const json& f = h["httpHeaders"][i];
          if (!f.is_object() || !f.contains("name") || !f["name"].is_string() || !f.value("value", json("")).is_string()) {
            return Status::Error(at + ".httpGet.httpHeaders[" + std::to_string(i) + "]: needs a string name and value");
          }
          std::string name = f["name"].get<std::string>(), value = f.value("value", std::string());
          if (name.empty() || name.find_first_of(":\r\n ") != std::string::npos || value.find_first_of("\r\n") != std::string::npos) {
            return Status::Error(at + ".httpGet.httpHeaders[" + std::to_string(i) + "]: not a valid header");
          }
          p.headers.emplace_back(std::move(name), std::move(value));
        }
      }
    } else if (entry.contains("tcpSocket") && entry["tcpSocket"].is_object()) {
      auto port = PortOf(entry["tcpSocket"], at + ".tcpSocket");
      if (!port.ok()) return port.status();
      p.kind = AppProbe::Kind::kTcp;
      p.port = *port;
    } else if (entry.contains("grpc") && entry["grpc"].is_object()) {
      const json& g = entry["grpc"];
      auto port = PortOf(g, at + ".grpc");
      if (!port.ok()) return port.status();
      p.kind = AppProbe::Kind::kGrpc;
      p.port = *port;
      if (g.contains("service")) {
        if (!g["service"].is_string()) return Status::Error(at + ".grpc.service: not a string");
        p.grpc_service = g["service"].get<std::string>();
      }
    } else {
      return Status::Error(at + ": needs one of httpGet, tcpSocket or grpc");
    }
    out.emplace(path, std::move(p));
  }
  return out;
}

asio::awaitable<ProbeOutcome> RunAppProbe(const AppProbe& probe, asio::ip::address app) {
  if (probe.kind == AppProbe::Kind::kHttp && !probe.host.empty()) {
    error_code ec;
    app = asio::ip::make_address(probe.host, ec);
    if (ec) {  // a name, as the kubelet would resolve it
      tcp::resolver resolver(co_await asio::this_coro::executor);
      auto [rec, found] = co_await resolver.async_resolve(probe.host, "", kTuple);
      if (rec || found.empty()) co_return ProbeOutcome{500, "resolving httpGet.host \"" + probe.host + "\": " + rec.message()};
      app = found.begin()->endpoint().address();
    }
  }
  tcp::endpoint to(app, probe.port);
  switch (probe.kind) {
    case AppProbe::Kind::kHttp: co_return co_await HttpProbe(probe, to);
    case AppProbe::Kind::kTcp: co_return co_await TcpProbe(probe, to);
    case AppProbe::Kind::kGrpc: co_return co_await GrpcProbe(probe, to);
  }
  co_return ProbeOutcome{};
}

}  // namespace tern::proxy
