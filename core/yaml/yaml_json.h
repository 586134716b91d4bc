// YAML <-> JSON, the way Kubernetes tooling treats YAML: a YAML document is a JSON value.
// Plain scalars resolve by the YAML 1.2 core schema (null, true/false, integers, floats);
// quoted scalars are always strings. Errors name the line and column.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/base/status.h"

namespace tern {

// Every document of a multi-document stream, in order; empty documents are dropped.
Result<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text);

// Exactly one document (an empty input is JSON null).
Result<nlohmann::json> ParseYaml(std::string_view text);

// Block-style YAML for one JSON value; strings that would read back as another type are quoted.
std::string ToYaml(const nlohmann::json& value);

}  // namespace tern
