#include "proxy/pod_settings.h"

#include "core/annotations/keys.h"
#include "core/annotations/sidecar_annotations.h"

namespace tern::proxy {

namespace {

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

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
        int hi = Hex(q[i + 1]), lo = Hex(q[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out->push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        break;
      }
      case 'u': {
        if (i + 4 >= q.size()) return false;
        unsigned cp = 0;
        for (int k = 1; k <= 4; ++k) {
          int h = Hex(q[i + k]);
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

PodSettings SettingsFromAnnotations(const std::map<std::string, std::string>& annotations) {
  PodSettings s;
  if (auto it = annotations.find(keys::kProxyConfig); it != annotations.end()) {
    auto pc = ParseProxyConfigAnnotation(it->second);
    if (!pc.ok()) {
      s.problems.push_back(std::string(keys::kProxyConfig) + ": " + pc.status().message());
    } else if (pc->concurrency) {
      if (*pc->concurrency >= 1 && *pc->concurrency <= 256) s.concurrency = *pc->concurrency;
      else if (*pc->concurrency == 0) s.concurrency = std::nullopt;  // 0: as many as the CPUs (the default)
      else s.problems.push_back(std::string(keys::kProxyConfig) + ": concurrency " + std::to_string(*pc->concurrency) + " is out of range [0, 256]");
    }
  }
  if (auto it = annotations.find("sidecar.istio.io/logLevel"); it != annotations.end()) {
    // Istio's (Envoy's) names: trace and critical map onto the nearest Tern level.
    std::string v = it->second == "trace" ? "debug" : it->second == "critical" ? "error" : it->second;
    LogLevel level;
    if (ParseLogLevel(v, &level)) s.log_level = level;
    else s.problems.push_back("sidecar.istio.io/logLevel: \"" + it->second + "\" is not one of trace, debug, info, warning, error, critical, off");
  }
  return s;
}

}  // namespace tern::proxy
