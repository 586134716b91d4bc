#include "webhook/pod_shape.h"

#include <nlohmann/json.hpp>

namespace tern::webhook {

using nlohmann::json;

bool IsSidecarReservedPort(int port) {
  switch (port) {
    case 15000: case 15001: case 15004: case 15006: case 15008: case 15020: case 15021: case 15053: case 15090:
      return true;
    default:
      return false;
  }
}

namespace {

std::string Join(const std::string& prefix, const std::string& field) {
  return prefix.empty() ? field : prefix + "." + field;
}

bool ExpectObject(const json& parent, const char* key, const std::string& path, FieldErrors& errors, bool required) {
  if (!parent.contains(key) || parent[key].is_null()) {
    if (required) errors.Add(path, "is required");
    return false;
  }
  if (!parent[key].is_object()) {
    errors.Add(path, std::string("must be an object, got ") + parent[key].type_name());
    return false;
  }
  return true;
}

void ValidatePort(const json& value, const std::string& path, FieldErrors& errors) {
  if (value.is_number_integer()) {
    int64_t p = value.get<int64_t>();
    if (p < 1 || p > 65535) errors.Add(path, std::to_string(p) + " is out of range 1-65535");
  } else if (!value.is_string() || value.get<std::string>().empty()) {
    errors.Add(path, "must be a port number or a port name");
  }
}

void ValidateHandler(const json& handler, const std::string& path, FieldErrors& errors) {
  if (!handler.is_object()) {
    errors.Add(path, std::string("must be an object, got ") + handler.type_name());
    return;
  }
  for (const char* kind : {"httpGet", "tcpSocket", "grpc"}) {
    if (!handler.contains(kind)) continue;
    const json& h = handler[kind];
    std::string p = path + "." + kind;
    if (!h.is_object()) {
      errors.Add(p, std::string("must be an object, got ") + h.type_name());
      continue;
    }
    if (!h.contains("port")) errors.Add(p + ".port", "is required");
    else ValidatePort(h["port"], p + ".port", errors);
    if (h.contains("path") && !h["path"].is_string()) errors.Add(p + ".path", "must be a string");
  }
}

void ValidateContainer(const json& c, const std::string& path, FieldErrors& errors) {
  if (!c.is_object()) {
    errors.Add(path, std::string("must be an object, got ") + c.type_name());
    return;
  }
  if (!c.contains("name") || !c["name"].is_string() || c["name"].get<std::string>().empty()) {
    errors.Add(path + ".name", "is required and must be a non-empty string");
  }
  if (c.contains("ports") && !c["ports"].is_null()) {
    if (!c["ports"].is_array()) {
      errors.Add(path + ".ports", "must be a list");
    } else {
      for (size_t i = 0; i < c["ports"].size(); ++i) {
        const json& port = c["ports"][i];
        std::string p = path + ".ports[" + std::to_string(i) + "]";
        if (!port.is_object()) {
          errors.Add(p, "must be an object");
          continue;
        }
        if (!port.contains("containerPort") || !port["containerPort"].is_number_integer()) {
          errors.Add(p + ".containerPort", "is required and must be an integer");
          continue;
        }
        ValidatePort(port["containerPort"], p + ".containerPort", errors);
        if (port.contains("name") && !port["name"].is_string()) errors.Add(p + ".name", "must be a string");
      }
    }
  }
  for (const char* probe : {"livenessProbe", "readinessProbe", "startupProbe"}) {
    if (c.contains(probe) && !c[probe].is_null()) ValidateHandler(c[probe], path + "." + probe, errors);
  }
  if (c.contains("lifecycle") && !c["lifecycle"].is_null()) {
    if (!c["lifecycle"].is_object()) {
      errors.Add(path + ".lifecycle", "must be an object");
    } else {
      for (const char* hook : {"postStart", "preStop"}) {
        if (c["lifecycle"].contains(hook)) ValidateHandler(c["lifecycle"][hook], path + ".lifecycle." + hook, errors);
      }
    }
  }
  if (c.contains("env") && !c["env"].is_null() && !c["env"].is_array()) errors.Add(path + ".env", "must be a list");
}

void ValidateContainerList(const json& spec, const char* key, const std::string& path, FieldErrors& errors,
                           bool required) {
  if (!spec.contains(key) || spec[key].is_null()) {
    if (required) errors.Add(path, "is required");
    return;
  }
  const json& list = spec[key];
  if (!list.is_array()) {
    errors.Add(path, std::string("must be a list, got ") + list.type_name());
    return;
  }
  if (required && list.empty()) errors.Add(path, "must list at least one container");
  for (size_t i = 0; i < list.size(); ++i) ValidateContainer(list[i], path + "[" + std::to_string(i) + "]", errors);
}

}  // namespace

void ValidatePodShape(const json& pod, const std::string& prefix, FieldErrors& errors) {
  if (!pod.is_object()) {
    errors.Add(prefix, std::string("must be a Pod object, got ") + pod.type_name());
    return;
  }
  if (ExpectObject(pod, "metadata", Join(prefix, "metadata"), errors, false)) {
    const json& md = pod["metadata"];
    for (const char* key : {"labels", "annotations"}) {
      if (md.contains(key)) ParseStringMap(md[key], Join(prefix, std::string("metadata.") + key), errors);
    }
  }
  if (!ExpectObject(pod, "spec", Join(prefix, "spec"), errors, true)) return;
  const json& spec = pod["spec"];
  ValidateContainerList(spec, "containers", Join(prefix, "spec.containers"), errors, true);
  ValidateContainerList(spec, "initContainers", Join(prefix, "spec.initContainers"), errors, false);
  if (spec.contains("volumes") && !spec["volumes"].is_null()) {
    if (!spec["volumes"].is_array()) {
      errors.Add(Join(prefix, "spec.volumes"), "must be a list");
    } else {
      for (size_t i = 0; i < spec["volumes"].size(); ++i) {
        const json& v = spec["volumes"][i];
        if (!v.is_object() || !v.contains("name") || !v["name"].is_string()) {
          errors.Add(Join(prefix, "spec.volumes[" + std::to_string(i) + "].name"), "is required and must be a string");
        }
      }
    }
  }
  if (spec.contains("hostNetwork") && !spec["hostNetwork"].is_boolean() && !spec["hostNetwork"].is_null()) {
    errors.Add(Join(prefix, "spec.hostNetwork"), "must be true or false");
  }
}

Labels PodLabels(const json& pod) {
  FieldErrors ignored;
  if (!pod.contains("metadata") || !pod["metadata"].contains("labels")) return {};
  return ParseStringMap(pod["metadata"]["labels"], "", ignored);
}

Labels PodAnnotations(const json& pod) {
  FieldErrors ignored;
  if (!pod.contains("metadata") || !pod["metadata"].contains("annotations")) return {};
  return ParseStringMap(pod["metadata"]["annotations"], "", ignored);
}

}  // namespace tern::webhook
