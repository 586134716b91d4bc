// networking.istio.io VirtualService (v1, v1beta1, v1alpha3), with the field names and meaning
// of Istio's reference, parsed strictly: every error carries its path
// ("spec.http[1].route[0].weight: ..."). Fields Istio defines that Tern does not act on yet are
// accepted and listed in `not_enforced`, so a valid resource is never refused for them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/field_errors.h"
#include "core/istio/duration.h"

namespace tern::istio {

struct StringMatch {
  enum class Kind { kExact, kPrefix, kRegex, kPresent };  // kPresent: `{}` (the header exists)
  Kind kind = Kind::kExact;
  std::string value;
};

struct HttpMatchRequest {
  std::string name;
  std::optional<StringMatch> uri, scheme, method, authority;
  std::map<std::string, StringMatch> headers;  // lower-case names
  std::map<std::string, StringMatch> without_headers;
  std::map<std::string, StringMatch> query_params;
  std::map<std::string, std::string> source_labels;
  std::optional<uint32_t> port;
  std::string source_namespace;
  bool ignore_uri_case = false;
};

struct Destination {
  std::string host;
  std::string subset;
  std::optional<uint32_t> port;
};

struct HeaderOperations {
  std::map<std::string, std::string> set, add;
  std::vector<std::string> remove;
};

struct Headers {
  HeaderOperations request, response;
};

struct HttpRouteDestination {
  Destination destination;
  int32_t weight = 0;  // normalised: a lone destination weighs 100
  Headers headers;
};

struct HttpRedirect {
  std::string uri, authority, scheme;
  std::optional<uint32_t> port;
  uint32_t redirect_code = 301;
};

struct HttpRewrite {
  std::optional<std::string> uri, authority;
};

struct HttpRetry {
  int32_t attempts = 0;
  std::optional<Duration> per_try_timeout;
  std::vector<std::string> retry_on;  // the policies and status codes, split
};

// A fault without `percentage` never fires (Istio's documented behaviour since 1.14).
struct HttpFault {
  struct Delay {
    double percentage = 0;
    Duration fixed_delay{0};
  };
  struct Abort {
    double percentage = 0;
    uint32_t http_status = 0;
    // grpcStatus instead: a trailers-only gRPC answer (HTTP 200, grpc-status) with this code.
    std::optional<int> grpc_status;
  };
  std::optional<Delay> delay;
  std::optional<Abort> abort;
};

struct HttpDirectResponse {
  uint32_t status = 200;
  std::string body;
};

struct HttpRoute {
  std::string name;
  std::vector<HttpMatchRequest> match;  // empty: matches everything
  std::vector<HttpRouteDestination> route;
  std::optional<HttpRedirect> redirect;
  std::optional<HttpDirectResponse> direct_response;
  std::optional<HttpRewrite> rewrite;
  std::optional<Duration> timeout;
  std::optional<HttpRetry> retries;
  std::optional<HttpFault> fault;
  std::optional<Destination> mirror;
  double mirror_percentage = 100;
  Headers headers;
};

struct L4Match {
  std::vector<std::string> destination_subnets;
  std::optional<uint32_t> port;
  std::map<std::string, std::string> source_labels;
  std::vector<std::string> sni_hosts;  // TLS routes
};

struct L4Route {
  std::vector<L4Match> match;
  std::vector<HttpRouteDestination> route;  // headers unused
};

struct VirtualService {
  std::string name, namespace_;
  std::vector<std::string> hosts, gateways, export_to;
  std::vector<HttpRoute> http;
  std::vector<L4Route> tcp, tls;
  std::vector<std::string> not_enforced;  // paths of accepted fields Tern does not act on
};

// `spec` is the resource's spec; `path` its path for errors ("spec").
VirtualService ParseVirtualServiceSpec(const nlohmann::json& spec, const std::string& path, FieldErrors& errors);

}  // namespace tern::istio
