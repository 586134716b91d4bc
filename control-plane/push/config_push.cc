#include "control-plane/push/config_push.h"

#include <chrono>

#include "core/base/ascii.h"

namespace tern::control_plane {

using nlohmann::json;

namespace {

// "a=1&b=two" -> the value of `key`, "" when absent (no percent-decoding: names are DNS labels).
std::string QueryValue(std::string_view target, std::string_view key) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return "";
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key && eq != std::string_view::npos) return std::string(pair.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return "";
}

bool IsDnsName(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.')) return false;
  }
  return true;
}

// "10.0.0.1:5000" -> "10.0.0.1", "[fd00::1]:5000" -> "fd00::1".
std::string PeerAddress(const std::string& peer) {
  std::string address = peer.substr(0, peer.rfind(':'));
  if (address.size() > 2 && address.front() == '[') address = address.substr(1, address.size() - 2);
  return address;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

ConfigPush::ConfigPush(const Logger& log, Registry& metrics, std::function<std::shared_ptr<const MeshConfig>()> mesh)
    : log_(log),
      mesh_(std::move(mesh)),
      pushes_(metrics.AddCounter("tern_push_snapshots_total", "Snapshots sent to proxies.", {}).With({})),
      connects_(metrics.AddCounter("tern_push_streams_total", "Config streams opened by proxies.", {}).With({})) {}

HttpResponse ConfigPush::Open(const HttpRequest& request, const std::shared_ptr<ResponseStream>& stream) {
  ProxyIdentity who{QueryValue(request.target, "pod"), QueryValue(request.target, "namespace")};
  if (!IsDnsName(who.pod) || !IsDnsName(who.namespace_)) {
    return {400, "application/json",
            json({{"error", "pod and namespace query parameters must be DNS names (got pod=\"" + who.pod +
                                "\", namespace=\"" + who.namespace_ + "\")"}}).dump()};
  }
  std::string token_account;  // a token not bound to a pod: the service account the pod must run as
  if (auto [status, refusal] = CheckToken(request, who, &token_account); status != 0) {
    log_.Warn("config stream refused", {{"pod", who.pod}, {"namespace", who.namespace_}, {"peer", request.peer}, {"reason", refusal}});
    return {status, "application/json", json({{"error", refusal}}).dump()};
  }
  auto s = std::make_shared<Subscriber>(Subscriber{who, stream, request.peer, "", 0, "", "", NowMs()});
  // One push at a time: a model arriving while this stream opens is sent to it after its first
  // snapshot, never lost between the two.
  std::lock_guard<std::mutex> pushing(push_mu_);
  std::shared_ptr<const Model> model;
  {
    std::lock_guard<std::mutex> lock(mu_);
    model = model_;
  }
  if (!model) return {503, "application/json", json({{"error", "discovery has no model yet"}}).dump()};
  if (std::string refusal = CheckIdentity(*model, who, request.peer, token_account); !refusal.empty()) {
    log_.Warn("config stream refused", {{"pod", who.pod}, {"namespace", who.namespace_}, {"peer", request.peer}, {"reason", refusal}});
    return {403, "application/json", json({{"error", refusal}}).dump()};
  }
  const SharedSnapshot& shared = SharedFor(model, mesh_());
  const json workload = WorkloadOf(*model, who);
  s->last_sent = SnapshotText(shared, workload, "");
  s->version = next_version_++;
  const std::string first = SnapshotText(shared, workload, std::to_string(s->version));
  {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.push_back(s);
  }
  connects_.Inc();
  pushes_.Inc();
  log_.Info("config stream opened", {{"pod", who.pod}, {"namespace", who.namespace_}, {"peer", request.peer}, {"version", s->version}});
  return {200, "application/x-ndjson", first + "\n"};
}

std::pair<int, std::string> ConfigPush::CheckToken(const HttpRequest& request, const ProxyIdentity& who,
                                                   std::string* service_account) {
  if (!reviewer_) return {0, ""};
  const std::string_view auth = request.Header("authorization");
  if (auth.size() <= 7 || !AsciiIEquals(auth.substr(0, 7), "Bearer ")) {
    return {401, "a service-account token is required (Authorization: Bearer, the pod's istio-token)"};
  }
  const kube::TokenVerdict v = reviewer_->Review(std::string(auth.substr(7)));
  switch (v.outcome) {
    case kube::TokenVerdict::Outcome::kUnavailable: return {503, "the token could not be reviewed: " + v.why};
    case kube::TokenVerdict::Outcome::kRefused: return {401, "token refused: " + v.why};
    case kube::TokenVerdict::Outcome::kAuthenticated: break;
  }
  const std::string owner = v.who.pod_name.empty() ? "service account " + v.who.namespace_ + "/" + v.who.service_account
                                                   : "pod " + v.who.namespace_ + "/" + v.who.pod_name;
  if (v.who.namespace_ != who.namespace_ || (!v.who.pod_name.empty() && v.who.pod_name != who.pod)) {
    return {403, "the token is " + owner + "'s; this request speaks for pod " + who.namespace_ + "/" + who.pod};
  }
  if (v.who.pod_name.empty()) *service_account = v.who.service_account;
  return {0, ""};
}

std::string ConfigPush::CheckIdentity(const Model& model, const ProxyIdentity& who, const std::string& peer,
                                      const std::string& service_account) {
  for (const auto& pod : model.pods) {
    if (pod.name != who.pod || pod.namespace_ != who.namespace_) continue;
    const std::string ip = pod.doc.value("status", json::object()).value("podIP", "");
    if (ip.empty()) return "pod " + who.namespace_ + "/" + who.pod + " has no IP yet";
    const std::string from = PeerAddress(peer);
    if (from != ip) return "pod " + who.namespace_ + "/" + who.pod + " is at " + ip + "; this stream comes from " + from;
    const std::string runs_as = pod.doc.value("spec", json::object()).value("serviceAccountName", "default");
    if (!service_account.empty() && service_account != runs_as) {
      return "pod " + who.namespace_ + "/" + who.pod + " runs as " + runs_as + "; the token is service account " +
             service_account + "'s";
    }
    return "";
  }
  return "no pod " + who.namespace_ + "/" + who.pod + " is known to discovery";
}

const SharedSnapshot& ConfigPush::SharedFor(const std::shared_ptr<const Model>& model,
                                            const std::shared_ptr<const MeshConfig>& mesh) {
  if (shared_model_ != model || shared_mesh_ != mesh) {
    shared_ = BuildSharedSnapshot(*model, *mesh);
    shared_model_ = model;
    shared_mesh_ = mesh;
  }
  return shared_;
}

bool ConfigPush::Push(Subscriber& s, const Model& model, const SharedSnapshot& shared) {
  if (!s.stream->open()) return false;
  const json workload = WorkloadOf(model, s.identity);
  std::string body = SnapshotText(shared, workload, "");
  if (body == s.last_sent) return true;  // nothing this proxy runs from changed (only pushes write it)
  {
    std::lock_guard<std::mutex> lock(mu_);  // readers (/debug) hold mu_ alone
    s.last_sent = std::move(body);
    s.version = next_version_++;
  }
  pushes_.Inc();
  return s.stream->Send(SnapshotText(shared, workload, std::to_string(s.version)) + "\n");
}

void ConfigPush::ModelChanged(std::shared_ptr<const Model> model) {
  std::lock_guard<std::mutex> pushing(push_mu_);
  std::vector<std::shared_ptr<Subscriber>> subscribers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    model_ = model;
    subscribers = subscribers_;
  }
  // The snapshots' common part once for the model; each proxy's own part is its workload.
  const SharedSnapshot& shared = SharedFor(model, mesh_());
  for (auto& s : subscribers) Push(*s, *model, shared);
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(subscribers_, [&](const std::shared_ptr<Subscriber>& s) {
    bool gone = !s->stream->open();
    if (gone) log_.Info("config stream closed", {{"pod", s->identity.pod}, {"namespace", s->identity.namespace_}});
    return gone;
  });
}

HttpResponse ConfigPush::Ack(const HttpRequest& request) {
  json ack = json::parse(request.body, nullptr, false);
  auto field = [&](const char* key) { return ack.is_object() && ack.contains(key) && ack[key].is_string() ? ack[key].get<std::string>() : ""; };
  const std::string ns = field("namespace"), pod = field("pod"), version = field("version"), error = field("error");
  if (!IsDnsName(ns) || !IsDnsName(pod) || version.empty()) {
    return {400, "application/json", json({{"error", "an ack is {\"namespace\", \"pod\", \"version\", \"error\"} with DNS names and a version"}}).dump()};
  }
  std::string token_account;
  if (auto [status, refusal] = CheckToken(request, {pod, ns}, &token_account); status != 0) {
    return {status, "application/json", json({{"error", refusal}}).dump()};
  }
  std::lock_guard<std::mutex> lock(mu_);
  bool found = false;
  for (auto& s : subscribers_) {
    // An ack counts for the stream of that pod, from that pod's address.
    if (s->identity.pod != pod || s->identity.namespace_ != ns || PeerAddress(s->peer) != PeerAddress(request.peer)) continue;
    s->acked_version = version;
    s->ack_error = error;
    found = true;
  }
  if (!error.empty()) log_.Warn("a proxy refused its snapshot", {{"pod", pod}, {"namespace", ns}, {"version", version}, {"error", error}});
  if (!found) return {404, "application/json", json({{"error", "no config stream for " + ns + "/" + pod}}).dump()};
  return {200, "application/json", "{}"};
}

json ConfigPush::Proxies() const {
  std::lock_guard<std::mutex> lock(mu_);
  json out = json::array();
  for (const auto& s : subscribers_) {
    if (!s->stream->open()) continue;
    out.push_back({{"pod", s->identity.pod}, {"namespace", s->identity.namespace_}, {"peer", s->peer},
                   {"version_sent", std::to_string(s->version)}, {"version_acked", s->acked_version},
                   {"error", s->ack_error}, {"connected_at_ms", s->connected_at_ms}});
  }
  return out;
}

HttpResponse ConfigPush::ProxyConfig(const HttpRequest& request) const {
  const std::string ns = QueryValue(request.target, "namespace"), pod = QueryValue(request.target, "pod");
  std::lock_guard<std::mutex> lock(mu_);
  for (auto it = subscribers_.rbegin(); it != subscribers_.rend(); ++it) {
    const Subscriber& s = **it;
    if (s.identity.pod != pod || s.identity.namespace_ != ns || !s.stream->open()) continue;
    json snapshot = json::parse(s.last_sent);
    snapshot["version"] = std::to_string(s.version);
    return {200, "application/json", snapshot.dump(2) + "\n"};
  }
  return {404, "application/json", json({{"error", "no connected proxy " + ns + "/" + pod}}).dump()};
}

}  // namespace tern::control_plane
