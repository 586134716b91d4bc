#include "core/istio/virtual_service.h"

#include <algorithm>
#include <set>

#include <re2/re2.h>

#include "core/base/object_reader.h"
#include "core/net/ip_range.h"

namespace tern::istio {
namespace {

using nlohmann::json;

// RFC 9110 token characters, lower case: Istio requires header match keys in lower case.
bool IsHeaderName(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

// Istio's regexes are RE2 (linear time, no backreferences): validated with RE2 itself, which the
// proxy also matches with.
void CheckRegex(const std::string& re, const std::string& path, FieldErrors& errors) {
  RE2::Options options;
  options.set_log_errors(false);
  RE2 compiled(re, options);
  if (!compiled.ok()) errors.Add(path, "\"" + re + "\" is not a valid RE2 regular expression: " + compiled.error());
}

std::optional<StringMatch> ReadStringMatch(const json& v, const std::string& path, FieldErrors& errors,
                                           bool allow_present) {
  ObjectReader r(v, path, errors);
  StringMatch m;
  int set = 0;
  if (r.String("exact", m.value)) m.kind = StringMatch::Kind::kExact, ++set;
  if (r.String("prefix", m.value)) m.kind = StringMatch::Kind::kPrefix, ++set;
  if (r.String("regex", m.value)) {
    m.kind = StringMatch::Kind::kRegex, ++set;
    CheckRegex(m.value, r.Path("regex"), errors);
  }
  if (set > 1) {
    errors.Add(path, "set exactly one of exact, prefix, regex");
    return std::nullopt;
  }
  if (set == 0) {
    if (!allow_present) {
      errors.Add(path, "set one of exact, prefix, regex");
      return std::nullopt;
    }
    m.kind = StringMatch::Kind::kPresent;
  }
  return m;
}

void ReadMatchMap(ObjectReader& r, const std::string& key, std::map<std::string, StringMatch>& out, bool header_names,
                  FieldErrors& errors) {
  const json* v = r.Get(key);
  if (!v) return;
  if (!v->is_object()) {
    errors.Add(r.Path(key), "must be a map of name to match");
    return;
  }
  for (auto it = v->begin(); it != v->end(); ++it) {
    std::string p = r.Path(key) + "." + it.key();
    if (header_names && !IsHeaderName(it.key())) {
      errors.Add(p, "header names must be lower-case tokens");
      continue;
    }
    if (auto m = ReadStringMatch(it.value(), p, errors, /*allow_present=*/true)) out[it.key()] = *m;
  }
}

std::optional<uint32_t> ReadPort(ObjectReader& r, const std::string& key) {
  int64_t port = 0;
  if (r.Int(key, 1, 65535, port)) return static_cast<uint32_t>(port);
  return std::nullopt;
}

HttpMatchRequest ReadMatch(const json& v, const std::string& path, FieldErrors& errors, std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  HttpMatchRequest m;
  r.String("name", m.name);
  for (auto [key, field] : {std::pair{"uri", &m.uri}, std::pair{"scheme", &m.scheme}, std::pair{"method", &m.method},
                            std::pair{"authority", &m.authority}}) {
    if (const json* s = r.Get(key)) field->operator=(ReadStringMatch(*s, r.Path(key), errors, false));
  }
  ReadMatchMap(r, "headers", m.headers, true, errors);
  ReadMatchMap(r, "withoutHeaders", m.without_headers, true, errors);
  ReadMatchMap(r, "queryParams", m.query_params, false, errors);
  r.StringMap("sourceLabels", m.source_labels);
  m.port = ReadPort(r, "port");
  r.String("sourceNamespace", m.source_namespace);
  r.Bool("ignoreUriCase", m.ignore_uri_case);
  if (r.Get("gateways")) ne.push_back(r.Path("gateways"));
  if (r.Get("statPrefix")) ne.push_back(r.Path("statPrefix"));
  return m;
}

Destination ReadDestination(const json& v, const std::string& path, FieldErrors& errors) {
  ObjectReader r(v, path, errors);
  Destination d;
  if (!r.String("host", d.host) || d.host.empty()) errors.Add(r.Path("host"), "required");
  r.String("subset", d.subset);
  if (const json* port = r.Get("port")) {
    ObjectReader pr(*port, r.Path("port"), errors);
    d.port = ReadPort(pr, "number");
  }
  return d;
}

HeaderOperations ReadHeaderOperations(const json& v, const std::string& path, FieldErrors& errors) {
  ObjectReader r(v, path, errors);
  HeaderOperations ops;
  r.StringMap("set", ops.set);
  r.StringMap("add", ops.add);
  r.StringList("remove", ops.remove);
  return ops;
}

Headers ReadHeaders(ObjectReader& parent, FieldErrors& errors) {
  Headers h;
  if (const json* v = parent.Get("headers")) {
    ObjectReader r(*v, parent.Path("headers"), errors);
    if (const json* q = r.Get("request")) h.request = ReadHeaderOperations(*q, r.Path("request"), errors);
    if (const json* s = r.Get("response")) h.response = ReadHeaderOperations(*s, r.Path("response"), errors);
  }
  return h;
}

double ReadPercentage(ObjectReader& r, const std::string& key, double fallback) {
  double value = fallback;
  if (const json* v = r.Get(key)) {
    ObjectReader pr(*v, r.Path(key), r.errors());
    pr.Number("value", 0, 100, value);
  }
  return value;
}

std::optional<Duration> ReadDuration(ObjectReader& r, const std::string& key) { return ReadDurationField(r, key, true); }

// Envoy's retry-on policies that Istio passes through, plus plain status codes.
bool IsRetryPolicy(const std::string& p) {
  static const std::set<std::string> known = {
      "5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream", "retriable-status-codes",
      "retriable-headers", "envoy-ratelimited", "cancelled", "deadline-exceeded", "internal", "resource-exhausted",
      "unavailable", "reset-before-request", "http3-post-connect-failure"};
  if (known.count(p)) return true;
  return p.size() == 3 && std::all_of(p.begin(), p.end(), [](char c) { return c >= '0' && c <= '9'; }) && p[0] >= '1' &&
         p[0] <= '5';
}

std::vector<HttpRouteDestination> ReadDestinations(ObjectReader& r, FieldErrors& errors, bool with_headers) {
  std::vector<HttpRouteDestination> out;
  bool any_weight = false;
  r.Array("route", [&](const json& v, const std::string& path) {
    ObjectReader dr(v, path, errors);
    HttpRouteDestination d;
    if (const json* dest = dr.Get("destination")) d.destination = ReadDestination(*dest, dr.Path("destination"), errors);
    else errors.Add(dr.Path("destination"), "required");
    int64_t weight = 0;
    if (dr.Int("weight", 0, 100, weight)) any_weight = true;
    d.weight = static_cast<int32_t>(weight);
    if (with_headers) d.headers = ReadHeaders(dr, errors);
    out.push_back(std::move(d));
  });
  if (out.size() == 1 && out[0].weight == 0) {
    out[0].weight = 100;
  } else if (out.size() > 1) {
    int sum = 0;
    for (const auto& d : out) sum += d.weight;
    if (!any_weight) errors.Add(r.Path("route"), "several destinations need weights that add up to 100");
    else if (sum != 100) errors.Add(r.Path("route"), "weights add up to " + std::to_string(sum) + ", not 100");
  }
  return out;
}

// A gRPC status by its name in all capitals, as Istio's fault.abort.grpcStatus takes it.
std::optional<int> GrpcStatusCode(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "OK",          "CANCELLED",          "UNKNOWN",        "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
      "UNIMPLEMENTED", "INTERNAL",          "UNAVAILABLE",    "DATA_LOSS",        "UNAUTHENTICATED"};
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (kNames[i] == name) return static_cast<int>(i);
  }
  return std::nullopt;
}

HttpRoute ReadHttpRoute(const json& v, const std::string& path, FieldErrors& errors, std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  HttpRoute route;
  r.String("name", route.name);
  r.Array("match", [&](const json& m, const std::string& p) { route.match.push_back(ReadMatch(m, p, errors, ne)); });
  route.route = ReadDestinations(r, errors, true);
  if (const json* red = r.Get("redirect")) {
    ObjectReader rr(*red, r.Path("redirect"), errors);
    HttpRedirect redirect;
    rr.String("uri", redirect.uri);
    rr.String("authority", redirect.authority);
    rr.String("scheme", redirect.scheme);
    redirect.port = ReadPort(rr, "port");
    int64_t code = 301;
    if (rr.Int("redirectCode", 300, 399, code)) redirect.redirect_code = static_cast<uint32_t>(code);
    if (rr.Get("derivePort")) ne.push_back(rr.Path("derivePort"));
    route.redirect = redirect;
  }
  if (const json* dr = r.Get("directResponse")) {
    ObjectReader rr(*dr, r.Path("directResponse"), errors);
    HttpDirectResponse direct;
    int64_t status = 0;
    if (rr.Int("status", 200, 599, status)) direct.status = static_cast<uint32_t>(status);
    else if (!rr.Get("status")) errors.Add(rr.Path("status"), "required");
    if (const json* body = rr.Get("body")) {
      ObjectReader br(*body, rr.Path("body"), errors);
      br.String("string", direct.body);
      if (br.Get("bytes")) ne.push_back(br.Path("bytes"));
    }
    route.direct_response = direct;
  }
  if (const json* rw = r.Get("rewrite")) {
    ObjectReader rr(*rw, r.Path("rewrite"), errors);
    HttpRewrite rewrite;
    rr.String("uri", rewrite.uri);
    rr.String("authority", rewrite.authority);
    if (rr.Get("uriRegexRewrite")) ne.push_back(rr.Path("uriRegexRewrite"));
    route.rewrite = rewrite;
  }
  route.timeout = ReadDuration(r, "timeout");
  if (const json* rt = r.Get("retries")) {
    ObjectReader rr(*rt, r.Path("retries"), errors);
    HttpRetry retry;
    int64_t attempts = 0;
    if (rr.Int("attempts", 0, 1000, attempts)) retry.attempts = static_cast<int32_t>(attempts);
    retry.per_try_timeout = ReadDuration(rr, "perTryTimeout");
    std::string retry_on;
    if (rr.String("retryOn", retry_on)) {
      for (const auto& p : SplitList(retry_on)) {
        if (IsRetryPolicy(p)) retry.retry_on.push_back(p);
        else errors.Add(rr.Path("retryOn"), "\"" + p + "\" is not a retry policy (5xx, gateway-error, connect-failure, refused-stream, reset, retriable-4xx, a status code, ...)");
      }
    }
    bool remote = false;
    if (rr.Bool("retryRemoteLocalities", remote)) ne.push_back(rr.Path("retryRemoteLocalities"));
    route.retries = retry;
  }
  if (const json* f = r.Get("fault")) {
    ObjectReader fr(*f, r.Path("fault"), errors);
    HttpFault fault;
    if (const json* d = fr.Get("delay")) {
      ObjectReader dr(*d, fr.Path("delay"), errors);
      HttpFault::Delay delay;
      delay.percentage = ReadPercentage(dr, "percentage", 0);
      if (auto fixed = ReadDuration(dr, "fixedDelay")) delay.fixed_delay = *fixed;
      else if (!dr.Get("fixedDelay")) errors.Add(dr.Path("fixedDelay"), "required");
      int64_t legacy = 0;
      if (dr.Int("percent", 0, 100, legacy)) delay.percentage = static_cast<double>(legacy);
      fault.delay = delay;
    }
    if (const json* a = fr.Get("abort")) {
      ObjectReader ar(*a, fr.Path("abort"), errors);
      HttpFault::Abort abort;
      abort.percentage = ReadPercentage(ar, "percentage", 0);
      int64_t status = 0;
      std::string grpc;
      int kinds = (ar.Get("httpStatus") != nullptr) + (ar.Get("grpcStatus") != nullptr) + (ar.Get("http2Error") != nullptr);
      if (kinds > 1) errors.Add(fr.Path("abort"), "set one of httpStatus, grpcStatus, http2Error");
      if (ar.Int("httpStatus", 200, 599, status)) {
        abort.http_status = static_cast<uint32_t>(status);
      } else if (ar.String("grpcStatus", grpc)) {
        abort.grpc_status = GrpcStatusCode(grpc);
        if (!abort.grpc_status) {
          errors.Add(ar.Path("grpcStatus"), "\"" + grpc + "\" is not a gRPC status name (OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, "
                                            "DEADLINE_EXCEEDED, NOT_FOUND, ..., UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED)");
        }
      } else if (ar.Get("http2Error")) {
        ne.push_back(ar.Path("http2Error"));
      } else if (kinds == 0) {
        errors.Add(ar.Path("httpStatus"), "required (or grpcStatus)");
      }
      fault.abort = abort;
    }
    route.fault = fault;
  }
  if (const json* m = r.Get("mirror")) route.mirror = ReadDestination(*m, r.Path("mirror"), errors);
  route.mirror_percentage = ReadPercentage(r, "mirrorPercentage", 100);
  if (r.Get("mirrors")) ne.push_back(r.Path("mirrors"));
  if (r.Get("corsPolicy")) ne.push_back(r.Path("corsPolicy"));
  if (r.Get("delegate")) ne.push_back(r.Path("delegate"));
  route.headers = ReadHeaders(r, errors);

  int actions = !route.route.empty() + route.redirect.has_value() + route.direct_response.has_value();
  if (actions == 0 && !r.Get("delegate")) errors.Add(path, "needs one of route, redirect, directResponse");
  if (actions > 1) errors.Add(path, "route, redirect and directResponse exclude each other");
  if (route.redirect && route.rewrite) errors.Add(path, "rewrite and redirect exclude each other");
  return route;
}

L4Route ReadL4Route(const json& v, const std::string& path, bool tls, FieldErrors& errors, std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  L4Route route;
  r.Array("match", [&](const json& m, const std::string& p) {
    ObjectReader mr(m, p, errors);
    L4Match match;
    mr.StringList("destinationSubnets", match.destination_subnets);
    for (size_t i = 0; i < match.destination_subnets.size(); ++i) {
      auto range = ParseIpRangeList(match.destination_subnets[i], false);
      if (!range.ok()) errors.Add(mr.Path("destinationSubnets") + "[" + std::to_string(i) + "]", range.status().message());
    }
    match.port = ReadPort(mr, "port");
    mr.StringMap("sourceLabels", match.source_labels);
    if (tls) {
      if (!mr.StringList("sniHosts", match.sni_hosts) || match.sni_hosts.empty()) {
        errors.Add(mr.Path("sniHosts"), "required for a TLS route");
      }
    }
    for (const char* key : {"gateways", "sourceNamespace"}) {
      if (mr.Get(key)) ne.push_back(mr.Path(key));
    }
    route.match.push_back(std::move(match));
  });
  if (tls && route.match.empty()) errors.Add(r.Path("match"), "required for a TLS route (sniHosts)");
  route.route = ReadDestinations(r, errors, false);
  if (route.route.empty()) errors.Add(r.Path("route"), "required");
  return route;
}

}  // namespace

VirtualService ParseVirtualServiceSpec(const json& spec, const std::string& path, FieldErrors& errors) {
  VirtualService vs;
  ObjectReader r(spec, path, errors);
  if (!r.StringList("hosts", vs.hosts) || vs.hosts.empty()) errors.Add(r.Path("hosts"), "at least one host is required");
  for (size_t i = 0; i < vs.hosts.size(); ++i) {
    if (vs.hosts[i].empty()) errors.Add(r.Path("hosts") + "[" + std::to_string(i) + "]", "must not be empty");
  }
  r.StringList("gateways", vs.gateways);
  r.StringList("exportTo", vs.export_to);
  r.Array("http", [&](const json& v, const std::string& p) { vs.http.push_back(ReadHttpRoute(v, p, errors, vs.not_enforced)); });
  r.Array("tcp", [&](const json& v, const std::string& p) { vs.tcp.push_back(ReadL4Route(v, p, false, errors, vs.not_enforced)); });
  r.Array("tls", [&](const json& v, const std::string& p) { vs.tls.push_back(ReadL4Route(v, p, true, errors, vs.not_enforced)); });
  if (vs.http.empty() && vs.tcp.empty() && vs.tls.empty()) errors.Add(path, "needs at least one of http, tcp, tls");
  return vs;
}

}  // namespace tern::istio
