#include "core/istio/destination_rule.h"

#include <set>

#include "core/base/object_reader.h"

namespace tern::istio {
namespace {

using nlohmann::json;

std::optional<Duration> ReadDuration(ObjectReader& r, const std::string& key) { return ReadDurationField(r, key, false); }

std::optional<int64_t> ReadCount(ObjectReader& r, const std::string& key, int64_t min = 0,
                                 int64_t max = INT32_MAX) {
  int64_t v = 0;
  if (r.Int(key, min, max, v)) return v;
  return std::nullopt;
}

LoadBalancer ReadLoadBalancer(const json& v, const std::string& path, FieldErrors& errors, std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  LoadBalancer lb;
  std::string simple;
  if (r.Enum("simple", {"UNSPECIFIED", "ROUND_ROBIN", "LEAST_REQUEST", "LEAST_CONN", "RANDOM", "PASSTHROUGH"}, simple)) {
    lb.simple = simple == "LEAST_CONN" ? "LEAST_REQUEST" : simple == "UNSPECIFIED" ? "" : simple;
  }
  if (const json* ch = r.Get("consistentHash")) {
    ObjectReader cr(*ch, r.Path("consistentHash"), errors);
    cr.String("httpHeaderName", lb.hash_header);
    cr.String("httpQueryParameterName", lb.hash_query_param);
    cr.Bool("useSourceIp", lb.hash_source_ip);
    if (const json* cookie = cr.Get("httpCookie")) {
      ObjectReader kr(*cookie, cr.Path("httpCookie"), errors);
      std::string name;
      if (kr.String("name", name) && !name.empty()) lb.hash_cookie = name;
      else errors.Add(kr.Path("name"), "required");
      // Envoy mints the cookie when a request lacks it and ttl is set; Tern only reads it.
      for (const char* key : {"path", "ttl", "attributes"}) {
        if (kr.Get(key)) ne.push_back(kr.Path(key));
      }
    }
    int sources = lb.hash_header.has_value() + lb.hash_cookie.has_value() + lb.hash_query_param.has_value() + lb.hash_source_ip;
    if (sources > 1) errors.Add(r.Path("consistentHash"), "httpHeaderName, httpCookie, useSourceIp and httpQueryParameterName exclude each other");
    // The ring's size tunes Envoy's ring hash; Tern hashes by rendezvous, which needs no ring.
    for (const char* key : {"ringHash", "maglev", "minimumRingSize"}) {
      if (cr.Get(key)) ne.push_back(cr.Path(key));
    }
  }
  for (const char* key : {"localityLbSetting", "warmupDurationSecs", "warmup"}) {
    if (r.Get(key)) ne.push_back(r.Path(key));
  }
  if (!lb.simple.empty() && lb.consistent_hash()) {
    errors.Add(path, "simple and consistentHash exclude each other");
  }
  return lb;
}

ConnectionPool ReadConnectionPool(const json& v, const std::string& path, FieldErrors& errors,
                                  std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  ConnectionPool cp;
  if (const json* tcp = r.Get("tcp")) {
    ObjectReader tr(*tcp, r.Path("tcp"), errors);
    cp.max_connections = ReadCount(tr, "maxConnections", 1);
    cp.connect_timeout = ReadDuration(tr, "connectTimeout");
    if (const json* ka = tr.Get("tcpKeepalive")) {
      ObjectReader kr(*ka, tr.Path("tcpKeepalive"), errors);
      TcpKeepalive keepalive;
      keepalive.probes = ReadCount(kr, "probes", 1, 127);
      keepalive.time = ReadDuration(kr, "time");
      keepalive.interval = ReadDuration(kr, "interval");
      cp.tcp_keepalive = keepalive;
    }
    for (const char* key : {"maxConnectionDuration", "idleTimeout"}) {
      if (tr.Get(key)) ne.push_back(tr.Path(key));
    }
  }
  if (const json* http = r.Get("http")) {
    ObjectReader hr(*http, r.Path("http"), errors);
    cp.http1_max_pending_requests = ReadCount(hr, "http1MaxPendingRequests", 1);
    cp.http2_max_requests = ReadCount(hr, "http2MaxRequests", 1);
    cp.max_requests_per_connection = ReadCount(hr, "maxRequestsPerConnection", 0);
    cp.max_retries = ReadCount(hr, "maxRetries", 0);
    cp.idle_timeout = ReadDuration(hr, "idleTimeout");
    hr.Enum("h2UpgradePolicy", {"DEFAULT", "DO_NOT_UPGRADE", "UPGRADE"}, cp.h2_upgrade_policy);
    for (const char* key : {"useClientProtocol", "maxConcurrentStreams"}) {
      if (hr.Get(key)) ne.push_back(hr.Path(key));
    }
  }
  return cp;
}

OutlierDetection ReadOutlier(const json& v, const std::string& path, FieldErrors& errors, std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  OutlierDetection od;
  od.consecutive_5xx_errors = ReadCount(r, "consecutive5xxErrors");
  // consecutiveErrors is the field's pre-1.5 name (it counted 5xx then, too).
  if (auto legacy = ReadCount(r, "consecutiveErrors"); legacy && !od.consecutive_5xx_errors) od.consecutive_5xx_errors = legacy;
  od.consecutive_gateway_errors = ReadCount(r, "consecutiveGatewayErrors");
  od.interval = ReadDuration(r, "interval");
  od.base_ejection_time = ReadDuration(r, "baseEjectionTime");
  od.max_ejection_percent = ReadCount(r, "maxEjectionPercent", 0, 100);
  od.min_health_percent = ReadCount(r, "minHealthPercent", 0, 100);
  for (const char* key : {"consecutiveLocalOriginFailures", "splitExternalLocalOriginErrors"}) {
    if (r.Get(key)) ne.push_back(r.Path(key));
  }
  return od;
}

ClientTls ReadTls(const json& v, const std::string& path, FieldErrors& errors, std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  ClientTls tls;
  r.Enum("mode", {"DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"}, tls.mode);
  r.String("sni", tls.sni);
  r.StringList("subjectAltNames", tls.subject_alt_names);
  r.String("clientCertificate", tls.client_certificate);
  r.String("privateKey", tls.private_key);
  r.String("caCertificates", tls.ca_certificates);
  r.String("credentialName", tls.credential_name);
  for (const char* key : {"insecureSkipVerify", "caCrl"}) {
    if (r.Get(key)) ne.push_back(r.Path(key));
  }
  if (tls.mode == "MUTUAL" && tls.credential_name.empty() && (tls.client_certificate.empty() || tls.private_key.empty())) {
    errors.Add(r.Path("mode"), "MUTUAL needs clientCertificate and privateKey, or credentialName");
  }
  return tls;
}

template <class T>
void ReadPolicyParts(ObjectReader& r, T& out, FieldErrors& errors, std::vector<std::string>& ne) {
  if (const json* v = r.Get("loadBalancer")) out.load_balancer = ReadLoadBalancer(*v, r.Path("loadBalancer"), errors, ne);
  if (const json* v = r.Get("connectionPool")) {
    out.connection_pool = ReadConnectionPool(*v, r.Path("connectionPool"), errors, ne);
  }
  if (const json* v = r.Get("outlierDetection")) {
    out.outlier_detection = ReadOutlier(*v, r.Path("outlierDetection"), errors, ne);
  }
  if (const json* v = r.Get("tls")) out.tls = ReadTls(*v, r.Path("tls"), errors, ne);
}

TrafficPolicy ReadTrafficPolicy(const json& v, const std::string& path, FieldErrors& errors,
                                std::vector<std::string>& ne) {
  ObjectReader r(v, path, errors);
  TrafficPolicy tp;
  ReadPolicyParts(r, tp, errors, ne);
  std::set<uint32_t> ports;
  r.Array("portLevelSettings", [&](const json& pv, const std::string& p) {
    ObjectReader pr(pv, p, errors);
    TrafficPolicy::PortLevel pl;
    if (const json* port = pr.Get("port")) {
      ObjectReader nr(*port, pr.Path("port"), errors);
      int64_t n = 0;
      if (nr.Int("number", 1, 65535, n)) pl.port = static_cast<uint32_t>(n);
    }
    if (pl.port == 0) errors.Add(pr.Path("port.number"), "required");
    else if (!ports.insert(pl.port).second) errors.Add(pr.Path("port.number"), "port " + std::to_string(pl.port) + " is listed twice");
    ReadPolicyParts(pr, pl, errors, ne);
    tp.port_level_settings.push_back(std::move(pl));
  });
  for (const char* key : {"tunnel", "proxyProtocol", "retryBudget"}) {
    if (r.Get(key)) ne.push_back(r.Path(key));
  }
  return tp;
}

// Subset names become part of cluster names and metrics: DNS-1123 labels, as Istio requires.
bool IsDnsLabel(const std::string& s) {
  if (s.empty() || s.size() > 63 || s.front() == '-' || s.back() == '-') return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return true;
}

}  // namespace

DestinationRule ParseDestinationRuleSpec(const json& spec, const std::string& path, FieldErrors& errors) {
  DestinationRule dr;
  ObjectReader r(spec, path, errors);
  if (!r.String("host", dr.host) || dr.host.empty()) errors.Add(r.Path("host"), "required");
  if (const json* tp = r.Get("trafficPolicy")) {
    dr.traffic_policy = ReadTrafficPolicy(*tp, r.Path("trafficPolicy"), errors, dr.not_enforced);
  }
  std::set<std::string> names;
  r.Array("subsets", [&](const json& v, const std::string& p) {
    ObjectReader sr(v, p, errors);
    Subset s;
    if (!sr.String("name", s.name) || !IsDnsLabel(s.name)) {
      errors.Add(sr.Path("name"), "required: a DNS label (lower case letters, digits, '-')");
    } else if (!names.insert(s.name).second) {
      errors.Add(sr.Path("name"), "subset \"" + s.name + "\" is defined twice");
    }
    sr.StringMap("labels", s.labels);
    if (const json* tp = sr.Get("trafficPolicy")) {
      s.traffic_policy = ReadTrafficPolicy(*tp, sr.Path("trafficPolicy"), errors, dr.not_enforced);
    }
    dr.subsets.push_back(std::move(s));
  });
  r.StringList("exportTo", dr.export_to);
  if (const json* ws = r.Get("workloadSelector")) {
    ObjectReader wr(*ws, r.Path("workloadSelector"), errors);
    wr.StringMap("matchLabels", dr.workload_selector);
  }
  return dr;
}

}  // namespace tern::istio
