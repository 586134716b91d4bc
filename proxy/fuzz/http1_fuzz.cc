// Fuzzes the HTTP/1.1 request path up to the routing decision, as the proxy runs it on bytes
// from a client: the raw header check, Beast's parser with the proxy's limits (fed in arbitrary
// pieces), the framing check, then the route match against the seed's VirtualService.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/config/snapshot.h"
#include "proxy/http1_request.h"
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
  namespace http = boost::beast::http;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t end = input.find("\r\n\r\n");
  if (end == std::string_view::npos || end > tern::proxy::kMaxHeaderBytes) return 0;
  if (!tern::proxy::RawHeaderProblem(input.substr(0, end + 2)).empty()) return 0;
  http::request_parser<http::buffer_body> parser;
  tern::proxy::LimitRequestParser(parser);
  // Feed the header in pieces whose sizes come from the input, as reads would deliver it.
  size_t at = 0, step = 1 + (size ? data[0] % 64 : 0);
  boost::beast::error_code ec;
  while (at < end + 4 && !parser.is_header_done()) {
    size_t n = std::min(step, end + 4 - at);
    size_t used = parser.put(boost::asio::buffer(input.data() + at, n), ec);
    if (ec == http::error::need_more) {
      ec = {};
      if (used == 0) {
        step *= 2;  // the parser wants a bigger piece
        if (step > end + 4) break;
        continue;
      }
    }
    if (ec) return 0;
    at += used;
  }
  if (!parser.is_header_done()) return 0;
  auto& req = parser.get();
  if (tern::proxy::FramingProblem(req)) return 0;
  std::vector<std::pair<std::string_view, std::string_view>> headers;
  for (const auto& f : req) headers.emplace_back(f.name_string(), f.value());
  std::string authority(req[http::field::host]);
  tern::proxy::RequestView view{.method = req.method_string(), .path = req.target(), .authority = authority,
                                .headers = &headers, .port = 8080};
  const tern::proxy::VirtualHost* vh = Table().ForAuthority(authority.empty() ? "product-service" : authority, 8080);
  if (!vh) vh = Table().ForDestination("10.96.0.20", 8080);
  if (const tern::proxy::Route* route = Table().Match(*vh, view)) (void)tern::proxy::RouteTable::Pick(*route, size);
  return 0;
}
