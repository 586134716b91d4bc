// Fuzzes the HTTP/1.1 request path up to the routing decision, as the proxy runs it on bytes
// from a client: the header section parsed by the proxy's own codec, the body after it decoded
// by its framing (fed in arbitrary pieces, as reads would deliver it), then the route match
// against the seed's VirtualService; and the same bytes as an upstream's answer, re-framed and
// written back out, which must parse again.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config/snapshot.h"
#include "proxy/header_limits.h"
#include "proxy/http1_codec.h"
#include "proxy/route_table.h"

namespace {

const char* kSnapshot = R"(
apiVersion: tern.dev/v1alpha1
kind: ProxySnapshot
workload: {name: web-1, namespace: my-app, labels: {app: web}}
services:
- {hostname: product-service.my-app.svc.cluster.local, clusterIPs: [10.96.0.20], ports: [{name: http, port: 8080}]}
endpoints:
- {service: product-service.my-app.svc.cluster.local, address: 10.0.0.1, ports: {http: 8080}, labels: {version: v1}}
- {service: product-service.my-app.svc.cluster.local, address: 10.0.0.2, ports: {http: 8080}, labels: {version: v2}}
resources:
- apiVersion: networking.istio.io/v1beta1
  kind: VirtualService
  metadata: {name: product-service}
  spec:
    hosts: [product-service]
    http:
    - match: [{headers: {x-canary: {exact: "true"}}, uri: {regex: "/api/.*"}, queryParams: {v: {prefix: "2"}}}]
      route: [{destination: {host: product-service, subset: v2}}]
    - route: [{destination: {host: product-service, subset: v1}, weight: 90}, {destination: {host: product-service, subset: v2}, weight: 10}]
- apiVersion: networking.istio.io/v1beta1
  kind: DestinationRule
  metadata: {name: product-service}
  spec: {host: product-service, subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]}
)";

const tern::proxy::RouteTable& Table() {
  static const std::shared_ptr<const tern::proxy::RouteTable> table =
      *tern::proxy::RouteTable::Build(*tern::config::ParseSnapshot(kSnapshot));
  return *table;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t end = input.find("\r\n\r\n");
  if (end == std::string_view::npos || end + 4 > tern::proxy::kMaxHeaderBytes) return 0;
  // The same bytes read as an upstream's answer: re-framed every way, written out, parsed again.
  tern::proxy::Http1Head res;
  if (!res.ParseResponse(input.substr(0, end + 4), size % 2)) {
    using tern::proxy::BodyFraming;
    const BodyFraming ways[] = {BodyFraming::kNone, BodyFraming::kLength, BodyFraming::kChunked, BodyFraming::kUntilClose};
    res.DropHopByHop();
    res.Frame(ways[size % 4], size);
    std::string wire;
    res.AppendTo(wire, size % 3 != 0, size % 5 ? 11 : 10);
    tern::proxy::Http1Head again;
    // (Its framing or Connection field may make a hundred fields one too many.)
    const char* problem = again.ParseResponse(wire, false);
    if (problem && problem != tern::proxy::kTooManyFields && ways[size % 4] != BodyFraming::kNone) __builtin_trap();
  }
  tern::proxy::Http1Head req;
  if (req.ParseRequest(input.substr(0, end + 4))) return 0;
  // The body, in pieces whose sizes come from the input; every byte taken is accounted for.
  tern::proxy::BodyDecoder body;
  body.Start(req.framing, req.content_length);
  std::string_view rest = input.substr(end + 4);
  size_t step = 1 + (size ? data[0] % 64 : 0), taken = 0, body_bytes = 0;
  while (!body.done() && taken < rest.size()) {
    std::string_view piece = rest.substr(taken, step);
    size_t used = 0;
    std::string_view bytes;
    if (body.Next(piece, used, bytes)) return 0;
    if (used == 0) __builtin_trap();  // input offered, none taken, not done: it would spin
    if (bytes.size() > used || (!bytes.empty() && (bytes.data() < piece.data() || bytes.data() + bytes.size() > piece.data() + used))) {
      __builtin_trap();  // data outside what was taken
    }
    taken += used;
    body_bytes += bytes.size();
  }
  if (req.framing == tern::proxy::BodyFraming::kLength && body.done() && body_bytes != req.content_length) __builtin_trap();
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  for (const auto& f : req.fields) headers.emplace_back(f.name, f.value);
  std::string authority(req.Get("host"));
  tern::proxy::RequestView view{.method = req.method, .path = req.target, .authority = authority,
                                .headers = &headers, .port = 8080};
  const tern::proxy::VirtualHost* vh = Table().ForAuthority(authority.empty() ? "product-service" : authority, 8080);
  if (!vh) vh = Table().ForDestination("10.96.0.20", 8080);
  if (const tern::proxy::Route* route = Table().Match(*vh, view)) (void)tern::proxy::RouteTable::Pick(*route, size);
  // What the proxy writes back out parses again, to the same fields.
  std::string wire;
  req.DropHopByHop();
  req.AppendTo(wire, true);
  tern::proxy::Http1Head again;
  // (An HTTP/1.0 request kept alive says so in one more field; a chunked one goes as HTTP/1.1.)
  const bool says_keep_alive = req.version == 10 && req.framing != tern::proxy::BodyFraming::kChunked;
  const char* problem = again.ParseRequest(wire);
  if (problem ? problem != tern::proxy::kTooManyFields : again.fields.size() != req.fields.size() + says_keep_alive) {
    __builtin_trap();
  }
  return 0;
}
