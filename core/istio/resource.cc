#include "core/istio/resource.h"

#include "core/base/object_reader.h"

namespace tern::istio {

using nlohmann::json;

Result<Resource> ParseResource(const json& doc) {
  FieldErrors errors;
  Resource res;
  {
    ObjectReader r(doc, "", errors);
    r.String("apiVersion", res.meta.api_version);
    r.String("kind", res.meta.kind);
    if (const json* md = r.Get("metadata")) {
      ObjectReader mr(*md, "metadata", errors);
      mr.String("name", res.meta.name);
      mr.String("namespace", res.meta.namespace_);
      mr.StringMap("labels", res.meta.labels);
      mr.StringMap("annotations", res.meta.annotations);
      mr.AcceptRest();  // uid, resourceVersion, creationTimestamp, ... are the API server's
    }
    if (res.meta.name.empty()) errors.Add("metadata.name", "required");
    r.Get("status");  // written by controllers, never read
    const std::string& v = res.meta.api_version;
    bool networking = v == "networking.istio.io/v1" || v == "networking.istio.io/v1beta1" ||
                      v == "networking.istio.io/v1alpha3";
    const json* spec = r.Get("spec");
    static const json kEmpty = json::object();
    if (!spec) {
      errors.Add("spec", "required");
      spec = &kEmpty;
    }
    if (res.meta.kind == "VirtualService" || res.meta.kind == "DestinationRule") {
      if (!networking) {
        errors.Add("apiVersion", "\"" + v + "\" is not networking.istio.io/v1, v1beta1 or v1alpha3");
      } else if (res.meta.kind == "VirtualService") {
        res.spec = ParseVirtualServiceSpec(*spec, "spec", errors);
      } else {
        res.spec = ParseDestinationRuleSpec(*spec, "spec", errors);
      }
    } else {
      errors.Add("kind", "\"" + res.meta.kind + "\" is not a resource Tern reads here (VirtualService, DestinationRule)");
    }
  }
  if (!errors.empty()) {
    std::string what = res.meta.kind.empty() ? "resource" : res.meta.kind;
    if (!res.meta.name.empty()) what += " " + (res.meta.namespace_.empty() ? "" : res.meta.namespace_ + "/") + res.meta.name;
    return Status::Error(what + ": " + errors.ToString());
  }
  return res;
}

}  // namespace tern::istio
