#include "core/istio/duration.h"

#include <cmath>
#include <string>

#include "core/base/object_reader.h"

namespace tern::istio {

Result<Duration> ParseDuration(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::Error("\"" + std::string(text) + "\" is not a duration (" + why + "; e.g. 10s, 1.5s, 250ms, 1m30s)");
  };
  if (text.empty()) return bad("empty");
  if (text == "0") return Duration(0);
  std::string_view rest = text;
  long double total = 0;
  while (!rest.empty()) {
    size_t i = 0;
    long double value = 0;
    bool digits = false;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
      value = value * 10 + (rest[i] - '0');
      digits = true;
      ++i;
    }
    if (i < rest.size() && rest[i] == '.') {
      ++i;
      long double scale = 0.1L;
      while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
        value += (rest[i] - '0') * scale;
        scale /= 10;
        digits = true;
        ++i;
      }
    }
    if (!digits) return bad("expected a number");
    size_t unit_start = i;
    while (i < rest.size() && !(rest[i] >= '0' && rest[i] <= '9') && rest[i] != '.') ++i;
    std::string_view unit = rest.substr(unit_start, i - unit_start);
    long double ns_per = 0;
    if (unit == "ns") ns_per = 1;
    else if (unit == "us" || unit == "\xC2\xB5s" || unit == "\xCE\xBCs") ns_per = 1e3L;
    else if (unit == "ms") ns_per = 1e6L;
    else if (unit == "s") ns_per = 1e9L;
    else if (unit == "m") ns_per = 60e9L;
    else if (unit == "h") ns_per = 3600e9L;
    else return bad(unit.empty() ? "missing unit" : "unknown unit \"" + std::string(unit) + "\"");
    total += value * ns_per;
    if (total > 9.2e18L) return bad("too long");
    rest.remove_prefix(i);
  }
  return Duration(static_cast<int64_t>(std::llround(static_cast<double>(total))));
}

std::optional<Duration> ReadDurationField(ObjectReader& r, const std::string& key, bool allow_zero) {
  std::string text;
  if (!r.String(key, text)) return std::nullopt;
  auto d = ParseDuration(text);
  if (!d.ok()) {
    r.errors().Add(r.Path(key), d.status().message());
    return std::nullopt;
  }
  if (*d < std::chrono::milliseconds(1) && !(allow_zero && d->count() == 0)) {
    r.errors().Add(r.Path(key), allow_zero ? "must be 0 or at least 1ms" : "must be at least 1ms");
    return std::nullopt;
  }
  return *d;
}

}  // namespace tern::istio
