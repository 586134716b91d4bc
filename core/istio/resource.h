// An Istio resource document (apiVersion, kind, metadata, spec) as users write it, parsed into
// its typed form. networking.istio.io/v1, v1beta1 and v1alpha3 are the same schema.
#pragma once

#include <map>
#include <string>
#include <variant>

#include <nlohmann/json.hpp>

#include "core/base/status.h"
#include "core/istio/destination_rule.h"
#include "core/istio/virtual_service.h"

namespace tern::istio {

struct ResourceMeta {
  std::string api_version, kind, name, namespace_;
  std::map<std::string, std::string> labels, annotations;
};

struct Resource {
  ResourceMeta meta;
  std::variant<VirtualService, DestinationRule> spec;
};

// Every problem in one error, each with its path ("spec.http[0].route: ...").
Result<Resource> ParseResource(const nlohmann::json& doc);

}  // namespace tern::istio
