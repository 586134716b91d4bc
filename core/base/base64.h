// Standard base64 (RFC 4648 section 4, with padding): AdmissionReview patches, caBundle fields,
// Secret data.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tern {

std::string Base64Encode(std::string_view data);
// nullopt for anything that is not canonical padded base64.
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace tern
