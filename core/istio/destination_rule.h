// networking.istio.io DestinationRule (v1, v1beta1, v1alpha3): subsets, load balancing,
// connection pools, outlier detection and client TLS, parsed strictly with field paths. Fields
// Istio defines that Tern does not act on yet are accepted and listed in `not_enforced`.
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

struct LoadBalancer {
  // ROUND_ROBIN, LEAST_REQUEST (LEAST_CONN is Istio's older name for it), RANDOM, PASSTHROUGH;
  // "" when unset.
  std::string simple;
  // consistentHash: at most one key source is set.
  std::optional<std::string> hash_header;       // httpHeaderName
  std::optional<std::string> hash_cookie;       // httpCookie.name (read; never minted)
  std::optional<std::string> hash_query_param;  // httpQueryParameterName
  bool hash_source_ip = false;                  // useSourceIp
  bool consistent_hash() const { return hash_header || hash_cookie || hash_query_param || hash_source_ip; }
};

struct TcpKeepalive {
  std::optional<int64_t> probes;
  std::optional<Duration> time, interval;
};

struct ConnectionPool {
  std::optional<int64_t> max_connections;
  std::optional<Duration> connect_timeout;
  std::optional<TcpKeepalive> tcp_keepalive;
  std::optional<int64_t> http1_max_pending_requests, http2_max_requests, max_requests_per_connection, max_retries;
  std::optional<Duration> idle_timeout;
  std::string h2_upgrade_policy;  // DEFAULT, DO_NOT_UPGRADE, UPGRADE; "" when unset
};

struct OutlierDetection {
  std::optional<int64_t> consecutive_5xx_errors, consecutive_gateway_errors;
  std::optional<Duration> interval, base_ejection_time;
  std::optional<int64_t> max_ejection_percent, min_health_percent;
};

struct ClientTls {
  std::string mode;  // DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL
  std::string sni;
  std::vector<std::string> subject_alt_names;
  std::string client_certificate, private_key, ca_certificates, credential_name;
};

struct TrafficPolicy {
  std::optional<LoadBalancer> load_balancer;
  std::optional<ConnectionPool> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<ClientTls> tls;
  struct PortLevel;
  std::vector<PortLevel> port_level_settings;
};

struct TrafficPolicy::PortLevel {
  uint32_t port = 0;
  std::optional<LoadBalancer> load_balancer;
  std::optional<ConnectionPool> connection_pool;
  std::optional<OutlierDetection> outlier_detection;
  std::optional<ClientTls> tls;
};

struct Subset {
  std::string name;
  std::map<std::string, std::string> labels;
  std::optional<TrafficPolicy> traffic_policy;
};

struct DestinationRule {
  std::string host;
  std::optional<TrafficPolicy> traffic_policy;
  std::vector<Subset> subsets;
  std::vector<std::string> export_to;
  std::map<std::string, std::string> workload_selector;
  std::vector<std::string> not_enforced;
};

DestinationRule ParseDestinationRuleSpec(const nlohmann::json& spec, const std::string& path, FieldErrors& errors);

}  // namespace tern::istio
