#include "core/base/json_fields.h"
#include "webhook/probes.h"

#include <string>

namespace tern::webhook {
namespace {

using nlohmann::json;

struct Slot {
  const char* field;      // livenessProbe, ... or lifecycle.preStop
  const char* path_kind;  // app-health or app-lifecycle
  const char* suffix;     // livez, ...
  bool lifecycle;
};
constexpr Slot kSlots[] = {
    {"livenessProbe", "app-health", "livez", false},
    {"readinessProbe", "app-health", "readyz", false},
    {"startupProbe", "app-health", "startupz", false},
    {"postStart", "app-lifecycle", "poststartz", true},
    {"preStop", "app-lifecycle", "prestopz", true},
};

std::string ProbePath(const Slot& slot, const std::string& container) {
  return std::string("/") + slot.path_kind + "/" + container + "/" + slot.suffix;
}

// A named port resolves against the container's own ports; an unknown name stays as written.
json ResolvePort(const json& port, const json& container) {
  if (!port.is_string() || !container.contains("ports") || !container["ports"].is_array()) return port;
  for (const auto& p : container["ports"]) {
    if (p.is_object() && StringField(p, "name") == port.get<std::string>()) return p["containerPort"];
  }
  return port;
}

json* SlotIn(json& container, const Slot& slot) {
  if (slot.lifecycle) {
    if (!container.contains("lifecycle") || !container["lifecycle"].is_object()) return nullptr;
    json& lc = container["lifecycle"];
    return lc.contains(slot.field) && lc[slot.field].is_object() ? &lc[slot.field] : nullptr;
  }
  return container.contains(slot.field) && container[slot.field].is_object() ? &container[slot.field] : nullptr;
}

}  // namespace

json RewriteAppProbes(json& containers, int status_port) {
  json probers = json::object();
  for (auto& c : containers) {
    const std::string name = c["name"].get<std::string>();
    for (const Slot& slot : kSlots) {
      json* probe = SlotIn(c, slot);
      if (!probe) continue;
      const char* kind = nullptr;
      for (const char* k : {"httpGet", "tcpSocket", "grpc"}) {
        if (probe->contains(k)) kind = k;
      }
      if (!kind) continue;  // exec probes run inside the container and need no rewrite
      json original = (*probe)[kind];
      original["port"] = ResolvePort(original["port"], c);
      json entry = {{kind, original}};
      if (probe->contains("timeoutSeconds")) entry["timeoutSeconds"] = (*probe)["timeoutSeconds"];
      std::string path = ProbePath(slot, name);
      probers[path] = entry;
      probe->erase(kind);
      (*probe)["httpGet"] = {{"path", path}, {"port", status_port}};
    }
  }
  return probers;
}

void RestoreAppProbes(json& containers, const json& probers, int status_port) {
  if (!probers.is_object()) return;
  for (auto& c : containers) {
    if (!c.is_object() || !c.contains("name")) continue;
    const std::string name = c["name"].get<std::string>();
    for (const Slot& slot : kSlots) {
      json* probe = SlotIn(c, slot);
      std::string path = ProbePath(slot, name);
      if (!probe || !probers.contains(path) || !probe->contains("httpGet")) continue;
      const json& rewritten = (*probe)["httpGet"];
      if (StringField(rewritten, "path") != path || rewritten.value("port", json()) != json(status_port)) continue;
      const json& entry = probers[path];
      probe->erase("httpGet");
      for (const char* k : {"httpGet", "tcpSocket", "grpc"}) {
        if (entry.contains(k)) (*probe)[k] = entry[k];
      }
    }
  }
}

}  // namespace tern::webhook
