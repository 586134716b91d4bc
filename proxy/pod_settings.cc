#include "proxy/pod_settings.h"

#include "core/annotations/keys.h"
#include "core/base/ascii.h"
#include "core/annotations/sidecar_annotations.h"
#include "core/istio/duration.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdlib>

namespace tern::proxy {

namespace {

// Go's strconv.Unquote for a double-quoted string (the escapes %q writes).
bool Unquote(std::string_view q, std::string* out) {
  if (q.size() < 2 || q.front() != '"' || q.back() != '"') return false;
  q = q.substr(1, q.size() - 2);
  out->clear();
  for (size_t i = 0; i < q.size(); ++i) {
    char c = q[i];
    if (c == '"') return false;
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (++i >= q.size()) return false;
    switch (q[i]) {
      case 'n': out->push_back('\n'); break;
      case 't': out->push_back('\t'); break;
      case 'r': out->push_back('\r'); break;
      case '\\': out->push_back('\\'); break;
      case '"': out->push_back('"'); break;
      case 'x': {
        if (i + 2 >= q.size()) return false;
        int hi = AsciiHexValue(q[i + 1]), lo = AsciiHexValue(q[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out->push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      case 'u': {
        if (i + 4 >= q.size()) return false;
        unsigned cp = 0;
        for (int k = 1; k <= 4; ++k) {
          int h = AsciiHexValue(q[i + k]);
          if (h < 0) return false;
          cp = cp * 16 + static_cast<unsigned>(h);
        }
        // UTF-8 encode (the BMP is enough for %q's \u escapes).
        if (cp < 0x80) {
          out->push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
          out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
          out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        } else {
          out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
          out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
          out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
        }
        i += 4;
        break;
      }
      default: return false;
    }
  }
  return true;
}

}  // namespace

std::map<std::string, std::string> ParseDownwardApiFile(const std::string& text, std::vector<std::string>* problems) {
  std::map<std::string, std::string> out;
  size_t at = 0;
  int line_no = 0;
  while (at < text.size()) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) nl = text.size();
    std::string_view line(text.data() + at, nl - at);
    at = nl + 1;
    ++line_no;
    if (line.empty()) continue;
    size_t eq = line.find('=');
    std::string value;
    if (eq == std::string_view::npos || eq == 0 || !Unquote(line.substr(eq + 1), &value)) {
      problems->push_back("line " + std::to_string(line_no) + ": not key=\"value\"");
      continue;
    }
    out[std::string(line.substr(0, eq))] = std::move(value);
  }
  return out;
}

namespace {

// Istio's (Envoy's) level names: trace and critical map onto the nearest Tern level.
bool ParseIstioLogLevel(const std::string& text, LogLevel* out) {
  std::string v = text == "trace" ? "debug" : text == "critical" ? "error" : text;
  return ParseLogLevel(v, out);
}

constexpr const char* kLevelNames = "is not one of trace, debug, info, warning, error, critical, off";

// "<n>/s", "<n>/m", "<n>/h": requests per second.
std::optional<double> ParseRate(const std::string& text) {
  size_t slash = text.find('/');
  if (slash == std::string::npos || slash == 0) return std::nullopt;
  char* end = nullptr;
  double n = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + slash || !(n > 0) || n > 1e9) return std::nullopt;
  std::string unit = text.substr(slash + 1);
  if (unit == "s") return n;
  if (unit == "m") return n / 60;
  if (unit == "h") return n / 3600;
  return std::nullopt;
}

}  // namespace

PodSettings SettingsFromAnnotations(const std::map<std::string, std::string>& annotations) {
  PodSettings s;
  if (auto it = annotations.find(keys::kProxyConfig); it != annotations.end()) {
    auto pc = ParseProxyConfigAnnotation(it->second);
    if (!pc.ok()) {
      s.problems.push_back(std::string(keys::kProxyConfig) + ": " + pc.status().message());
    } else {
      const std::string where = keys::kProxyConfig;
      if (pc->concurrency) {
        if (*pc->concurrency >= 1 && *pc->concurrency <= 256) s.concurrency = *pc->concurrency;
        else if (*pc->concurrency == 0) s.concurrency = std::nullopt;  // 0: as many as the CPUs (the default)
        else s.problems.push_back(where + ": concurrency " + std::to_string(*pc->concurrency) + " is out of range [0, 256]");
      }
      // On shutdown Istio drains for terminationDrainDuration; drainDuration is the older knob.
      for (const char* field : {"drainDuration", "terminationDrainDuration"}) {
        if (!pc->document.contains(field)) continue;
        const auto& v = pc->document[field];
        auto d = v.is_string() ? istio::ParseDuration(v.get<std::string>()) : Result<istio::Duration>(Status::Error("must be a duration string"));
        if (!d.ok() || *d > std::chrono::hours(1)) {
          s.problems.push_back(where + ": " + field + ": " + (d.ok() ? "must be at most 1h" : d.status().message()));
        } else {
          s.drain = std::chrono::duration_cast<std::chrono::milliseconds>(*d);
        }
      }
      if (pc->document.contains("logLevel")) {
        const auto& v = pc->document["logLevel"];
        LogLevel level;
        if (v.is_string() && ParseIstioLogLevel(v.get<std::string>(), &level)) s.log_level = level;
        else s.problems.push_back(where + ": logLevel " + v.dump() + " " + kLevelNames);
      }
    }
  }
  if (auto it = annotations.find("sidecar.istio.io/logLevel"); it != annotations.end()) {
    LogLevel level;
    if (ParseIstioLogLevel(it->second, &level)) s.log_level = level;
    else s.problems.push_back("sidecar.istio.io/logLevel: \"" + it->second + "\" " + kLevelNames);
  }
  if (auto it = annotations.find("tern.dev/rate-limit"); it != annotations.end()) {
    auto rate = ParseRate(it->second);
    if (!rate) {
      s.problems.push_back("tern.dev/rate-limit: \"" + it->second + "\" is not <n>/s, <n>/m or <n>/h with n > 0");
    } else {
      RateLimit limit{.per_second = *rate, .burst = std::max(1.0, *rate)};
      if (auto b = annotations.find("tern.dev/rate-limit-burst"); b != annotations.end()) {
        char* end = nullptr;
        long burst = std::strtol(b->second.c_str(), &end, 10);
        if (b->second.empty() || *end || burst < 1 || burst > 1000000000) {
          s.problems.push_back("tern.dev/rate-limit-burst: \"" + b->second + "\" is not an integer from 1 to 1000000000");
        } else {
          limit.burst = static_cast<double>(burst);
        }
      }
      s.rate_limit = limit;
    }
  }
  return s;
}

}  // namespace tern::proxy
