#include "core/annotations/sidecar_annotations.h"

#include <charconv>
#include <set>

#include "core/annotations/keys.h"
#include "core/kube/quantity.h"
#include "core/net/ip_range.h"
#include "core/yaml/yaml_json.h"

namespace tern {

const char* InterceptionModeName(InterceptionMode mode) {
  switch (mode) {
    case InterceptionMode::kRedirect: return "REDIRECT";
    case InterceptionMode::kTproxy: return "TPROXY";
    case InterceptionMode::kNone: return "NONE";
  }
  return "REDIRECT";
}

bool ParseInterceptionMode(std::string_view text, InterceptionMode* out) {
  if (text == "REDIRECT") *out = InterceptionMode::kRedirect;
  else if (text == "TPROXY") *out = InterceptionMode::kTproxy;
  else if (text == "NONE") *out = InterceptionMode::kNone;
  else return false;
  return true;
}

bool ParseAnnotationBool(std::string_view text, bool* out) {
  static const std::set<std::string_view> kTrue = {"1", "t", "T", "TRUE", "true", "True"};
  static const std::set<std::string_view> kFalse = {"0", "f", "F", "FALSE", "false", "False"};
  if (kTrue.count(text)) *out = true;
  else if (kFalse.count(text)) *out = false;
  else return false;
  return true;
}

std::string AnnotationPath(const std::string& key) { return "metadata.annotations[\"" + key + "\"]"; }

namespace {

const std::string* Find(const Labels& annotations, const char* key) {
  auto it = annotations.find(key);
  return it == annotations.end() ? nullptr : &it->second;
}

void Fail(FieldErrors& errors, const char* key, const std::string& value, const std::string& why) {
  errors.Add(AnnotationPath(key), "invalid value \"" + value + "\": " + why);
}

std::optional<std::string> Ports(const Labels& a, const char* key, bool wildcard, FieldErrors& errors) {
  const std::string* v = Find(a, key);
  if (!v) return std::nullopt;
  auto parsed = ParsePortList(*v, wildcard);
  if (!parsed.ok()) Fail(errors, key, *v, parsed.status().message());
  return *v;
}

std::optional<std::string> Ranges(const Labels& a, const char* key, bool wildcard, FieldErrors& errors) {
  const std::string* v = Find(a, key);
  if (!v) return std::nullopt;
  auto parsed = ParseIpRangeList(*v, wildcard);
  if (!parsed.ok()) Fail(errors, key, *v, parsed.status().message());
  return *v;
}

std::optional<std::string> Quantity(const Labels& a, const char* key, FieldErrors& errors) {
  const std::string* v = Find(a, key);
  if (!v) return std::nullopt;
  auto q = ParseQuantity(*v);
  if (!q.ok()) Fail(errors, key, *v, q.status().message());
  else if (*q < 0) Fail(errors, key, *v, "must not be negative");
  return *v;
}

std::optional<bool> Bool(const Labels& a, const char* key, FieldErrors& errors) {
  const std::string* v = Find(a, key);
  if (!v) return std::nullopt;
  bool b = false;
  if (!ParseAnnotationBool(*v, &b)) {
    Fail(errors, key, *v, "must be true or false");
    return std::nullopt;
  }
  return b;
}

std::optional<int> Int(const Labels& a, const char* key, int min, int max, FieldErrors& errors) {
  const std::string* v = Find(a, key);
  if (!v) return std::nullopt;
  int n = 0;
  auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (v->empty() || ec != std::errc() || ptr != v->data() + v->size()) {
    Fail(errors, key, *v, "must be an integer");
    return std::nullopt;
  }
  if (n < min || n > max) {
    Fail(errors, key, *v, "must be between " + std::to_string(min) + " and " + std::to_string(max));
    return std::nullopt;
  }
  return n;
}

nlohmann::json JsonObject(const Labels& a, const char* key, FieldErrors& errors) {
  const std::string* v = Find(a, key);
  if (!v) return nlohmann::json::object();
  auto parsed = nlohmann::json::parse(*v, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    Fail(errors, key, *v, "must be a JSON object keyed by volume name");
    return nlohmann::json::object();
  }
  for (auto it = parsed.begin(); it != parsed.end(); ++it) {
    if (!it.value().is_object()) Fail(errors, key, *v, "entry \"" + it.key() + "\" must be an object");
  }
  return parsed;
}

// ProxyConfig fields Istio defines; Tern acts on some and passes the rest to the proxy. An
// unknown field is most likely a typo, so it is refused like Istio refuses it.
const std::set<std::string>& KnownProxyConfigFields() {
  static const std::set<std::string> kFields = {
      "concurrency", "holdApplicationUntilProxyStarts", "proxyMetadata", "discoveryAddress",
      "drainDuration", "terminationDrainDuration", "parentShutdownDuration", "statusPort",
      "proxyStatsMatcher", "tracing", "interceptionMode", "serviceCluster", "tracingServiceName",
      "proxyHeaders", "gatewayTopology", "readinessProbe", "privateKeyProvider", "image",
      "extraStatTags", "meshId", "clusterName", "configPath", "binaryPath", "statNameLength",
      "controlPlaneAuthPolicy", "customConfigFile", "envoyAccessLogService", "envoyMetricsService",
      "caCertificatesPem", "runtimeValues", "logLevel", "componentLogLevel"};
  return kFields;
}

}  // namespace

Result<ProxyConfigAnnotation> ParseProxyConfigAnnotation(const std::string& text) {
  auto doc = ParseYaml(text);
  if (!doc.ok()) return doc.status();
  ProxyConfigAnnotation pc;
  if (doc->is_null()) return pc;
  if (!doc->is_object()) return Status::Error("must be a ProxyConfig object");
  FieldErrors errors;
  for (auto it = doc->begin(); it != doc->end(); ++it) {
    if (!KnownProxyConfigFields().count(it.key())) errors.Add(it.key(), "unknown ProxyConfig field");
  }
  if (doc->contains("concurrency")) {
    const auto& c = (*doc)["concurrency"];
    if (!c.is_number_integer() || c.get<int64_t>() < 0 || c.get<int64_t>() > 1024) {
      errors.Add("concurrency", "must be an integer from 0 to 1024");
    } else {
      pc.concurrency = c.get<int>();
    }
  }
  if (doc->contains("holdApplicationUntilProxyStarts")) {
    const auto& h = (*doc)["holdApplicationUntilProxyStarts"];
    if (!h.is_boolean()) errors.Add("holdApplicationUntilProxyStarts", "must be true or false");
    else pc.hold_application_until_proxy_starts = h.get<bool>();
  }
  if (doc->contains("proxyMetadata")) {
    FieldErrors meta_errors;
    Labels meta = ParseStringMap((*doc)["proxyMetadata"], "proxyMetadata", meta_errors);
    errors.Append(meta_errors);
    pc.proxy_metadata.insert(meta.begin(), meta.end());
  }
  if (!errors.empty()) return errors.ToStatus();
  pc.document = std::move(doc).value();
  return pc;
}

CaptureAnnotations ParseCaptureAnnotations(const Labels& a, FieldErrors& errors) {
  CaptureAnnotations c;
  c.include_inbound_ports = Ports(a, keys::kIncludeInboundPorts, true, errors);
  c.exclude_inbound_ports = Ports(a, keys::kExcludeInboundPorts, false, errors);
  c.include_outbound_ports = Ports(a, keys::kIncludeOutboundPorts, false, errors);
  c.exclude_outbound_ports = Ports(a, keys::kExcludeOutboundPorts, false, errors);
  c.include_outbound_ip_ranges = Ranges(a, keys::kIncludeOutboundIPRanges, true, errors);
  c.exclude_outbound_ip_ranges = Ranges(a, keys::kExcludeOutboundIPRanges, false, errors);
  if (const std::string* v = Find(a, keys::kExcludeInterfaces)) {
    for (const auto& name : SplitList(*v)) {
      bool ok = name.size() <= 15 && name.find_first_of("/ \t:") == std::string::npos;
      if (!ok) Fail(errors, keys::kExcludeInterfaces, *v, "\"" + name + "\" is not an interface name");
    }
    c.exclude_interfaces = *v;
  }
  if (const std::string* v = Find(a, keys::kInterceptionMode)) {
    InterceptionMode mode;
    if (ParseInterceptionMode(*v, &mode)) c.interception_mode = mode;
    else Fail(errors, keys::kInterceptionMode, *v, "must be one of REDIRECT, TPROXY, NONE");
  }
  return c;
}

SidecarAnnotations ParseSidecarAnnotations(const Labels& a, FieldErrors& errors) {
  SidecarAnnotations s;
  s.proxy_cpu = Quantity(a, keys::kProxyCpu, errors);
  s.proxy_memory = Quantity(a, keys::kProxyMemory, errors);
  s.proxy_cpu_limit = Quantity(a, keys::kProxyCpuLimit, errors);
  s.proxy_memory_limit = Quantity(a, keys::kProxyMemoryLimit, errors);
  s.rewrite_app_probers = Bool(a, keys::kRewriteAppHttpProbers, errors);
  s.native_sidecar = Bool(a, keys::kNativeSidecar, errors);
  s.status_port = Int(a, keys::kStatusPort, 0, 65535, errors);
  s.readiness_initial_delay_seconds = Int(a, keys::kReadinessInitialDelay, 0, 86400, errors);
  s.readiness_period_seconds = Int(a, keys::kReadinessPeriod, 1, 86400, errors);
  s.readiness_failure_threshold = Int(a, keys::kReadinessFailureThreshold, 1, 100000, errors);
  s.readiness_application_ports = Ports(a, keys::kReadinessApplicationPorts, false, errors);
  if (const std::string* v = Find(a, keys::kProxyConfig)) {
    auto pc = ParseProxyConfigAnnotation(*v);
    if (pc.ok()) s.proxy_config = std::move(pc).value();
    else Fail(errors, keys::kProxyConfig, *v, pc.status().message());
  }
  s.user_volumes = JsonObject(a, keys::kUserVolume, errors);
  s.user_volume_mounts = JsonObject(a, keys::kUserVolumeMount, errors);
  s.capture = ParseCaptureAnnotations(a, errors);
  return s;
}

}  // namespace tern
