#include "core/yaml/yaml_json.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <cstdlib>
#include <string_view>

namespace tern {
namespace {

bool IsNullWord(const std::string& s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool AllDigits(std::string_view s, bool hex) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= '0' && c <= '9') || (hex && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')));
    if (!ok) return false;
  }
  return true;
}

// [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
bool IsFloat(std::string_view s) {
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) s.remove_prefix(1);
  size_t e = s.find_first_of("eE");
  std::string_view mantissa = s.substr(0, e);
  if (e != std::string_view::npos) {
    std::string_view exp = s.substr(e + 1);
    if (!exp.empty() && (exp[0] == '-' || exp[0] == '+')) exp.remove_prefix(1);
    if (!AllDigits(exp, false)) return false;
  }
  size_t dot = mantissa.find('.');
  if (dot == std::string_view::npos) return AllDigits(mantissa, false);
  std::string_view whole = mantissa.substr(0, dot), frac = mantissa.substr(dot + 1);
  if (whole.empty()) return AllDigits(frac, false);
  return AllDigits(whole, false) && (frac.empty() || AllDigits(frac, false));
}

// Resolves a plain (unquoted) scalar per the YAML 1.2 core schema.
nlohmann::json ResolvePlain(const std::string& s) {
  if (IsNullWord(s)) return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  std::string_view digits(s);
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
  if (AllDigits(digits, false)) {
    try {
      return static_cast<int64_t>(std::stoll(s));
    } catch (const std::out_of_range&) {
      return std::strtod(s.c_str(), nullptr);
    }
  }
  if (s.size() > 2 && s[0] == '0' && s[1] == 'x' && AllDigits(std::string_view(s).substr(2), true)) {
    try {
      return static_cast<int64_t>(std::stoll(s, nullptr, 16));
    } catch (const std::out_of_range&) {
      return s;
    }
  }
  if (IsFloat(s)) return std::strtod(s.c_str(), nullptr);  // overflow saturates to infinity
  if (s == ".inf" || s == ".Inf" || s == "+.inf") return HUGE_VAL;
  if (s == "-.inf" || s == "-.Inf") return -HUGE_VAL;
  return s;
}

// Aliases make a small document expand without bound ("billion laughs") or refer to themselves
// (`&a [*a]`); the conversion spends from a node budget and a depth budget and refuses a
// document that would exceed either.
constexpr size_t kMaxNodes = 250000;        // the largest real manifests (CRD bundles) stay far below
constexpr size_t kMaxBytes = 16 << 20;      // of scalar text, aliases counted each time they are used
constexpr size_t kMaxDepth = 256;
struct TooLarge {
  const char* what;
};
struct Budget {
  size_t nodes = kMaxNodes;
  size_t bytes = kMaxBytes;
};

nlohmann::json ToJson(const YAML::Node& node, Budget& budget, size_t depth = 0) {
  if (budget.nodes-- == 0) throw TooLarge{"more than 250000 nodes once aliases are expanded"};
  if (depth > kMaxDepth) throw TooLarge{"nested deeper than 256 levels (or an alias refers to itself)"};
  if (node.IsScalar()) {
    if (node.Scalar().size() > budget.bytes) throw TooLarge{"more than 16 MiB of text once aliases are expanded"};
    budget.bytes -= node.Scalar().size();
  }
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return node.Scalar();
      return ResolvePlain(node.Scalar());
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json out = nlohmann::json::array();
      for (const auto& item : node) out.push_back(ToJson(item, budget, depth + 1));
      return out;
    }
    case YAML::NodeType::Map: {
      nlohmann::json out = nlohmann::json::object();
      for (const auto& kv : node) {
        std::string key = kv.first.as<std::string>();
        // Keys count like scalars: an aliased long key repeated by expansion costs the same.
        if (key.size() > budget.bytes) throw TooLarge{"more than 16 MiB of text once aliases are expanded"};
        budget.bytes -= key.size();
        out[key] = ToJson(kv.second, budget, depth + 1);
      }
      return out;
    }
  }
  return nullptr;
}

Status YamlError(const YAML::Exception& e) {
  if (e.mark.is_null()) return Status::Error("invalid YAML: " + e.msg);
  return Status::Error("invalid YAML at line " + std::to_string(e.mark.line + 1) + ", column " +
                       std::to_string(e.mark.column + 1) + ": " + e.msg);
}

// A literal block (|) reads back with exactly one trailing newline and cannot start with a
// space; any other multi-line string is written double-quoted with escapes.
bool FitsLiteralBlock(const std::string& s) {
  return s.size() >= 2 && s.back() == '\n' && s[s.size() - 2] != '\n' && s[0] != ' ' && s[0] != '\n' &&
         s.find('\r') == std::string::npos;
}

void EmitString(YAML::Emitter& out, const std::string& s) {
  if (s.find('\n') != std::string::npos) {
    if (FitsLiteralBlock(s)) out << YAML::Literal << s;
    else out << YAML::DoubleQuoted << s;
  } else if (!ResolvePlain(s).is_string() || s.empty()) {
    out << YAML::DoubleQuoted << s;
  } else {
    out << s;
  }
}

void Emit(YAML::Emitter& out, const nlohmann::json& v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: out << YAML::Null; break;
    case nlohmann::json::value_t::boolean: out << (v.get<bool>() ? "true" : "false"); break;
    case nlohmann::json::value_t::number_integer: out << v.get<int64_t>(); break;
    case nlohmann::json::value_t::number_unsigned: out << v.get<uint64_t>(); break;
    case nlohmann::json::value_t::number_float: {
      double d = v.get<double>();
      // JSON has no infinities (nlohmann would print null); YAML spells them .inf.
      if (std::isinf(d)) out << (d > 0 ? ".inf" : "-.inf");
      else out << v.dump();
      break;
    }
    case nlohmann::json::value_t::string: EmitString(out, v.get_ref<const std::string&>()); break;
    case nlohmann::json::value_t::array:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        break;
      }
      out << YAML::BeginSeq;
      for (const auto& item : v) Emit(out, item);
      out << YAML::EndSeq;
      break;
    case nlohmann::json::value_t::object:
      if (v.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        break;
      }
      out << YAML::BeginMap;
      for (auto it = v.begin(); it != v.end(); ++it) {
        out << YAML::Key;
        EmitString(out, it.key());
        out << YAML::Value;
        Emit(out, it.value());
      }
      out << YAML::EndMap;
      break;
    default: out << YAML::Null; break;
  }
}

// YAML streams are printable Unicode; a byte sequence that is not UTF-8, or a control character,
// is refused up front (yaml-cpp would pass it through into strings JSON cannot serialize).
Status CheckUtf8(std::string_view text) {
  size_t i = 0, line = 1, column = 1;
  while (i < text.size()) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + len <= text.size();
    // YAML's printable set: no C0 controls but tab, LF and CR, no DEL.
    if (len == 1) ok = c == '\t' || c == '\n' || c == '\r' || (c >= 0x20 && c != 0x7F);
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
    if (ok && len == 2) ok = c >= 0xC2;  // no overlong forms
    if (ok && len == 3) {
      unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);  // overlong, surrogates
    }
    if (ok && len == 4) {
      unsigned char c1 = static_cast<unsigned char>(text[i + 1]);
      ok = c <= 0xF4 && !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90);
    }
    if (!ok) {
      return Status::Error("invalid YAML at line " + std::to_string(line) + ", column " + std::to_string(column) +
                           ": not UTF-8 printable text");
    }
    if (c == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
    i += len;
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<nlohmann::json>> ParseYamlDocuments(std::string_view text) {
  if (Status utf8 = CheckUtf8(text); !utf8.ok()) return utf8;
  try {
    std::vector<nlohmann::json> docs;
    Budget budget;
    for (const auto& node : YAML::LoadAll(std::string(text))) {
      nlohmann::json doc = ToJson(node, budget);
      if (!doc.is_null()) docs.push_back(std::move(doc));
    }
    return docs;
  } catch (const YAML::Exception& e) {
    return YamlError(e);
  } catch (const TooLarge& e) {
    return Status::Error(std::string("invalid YAML: ") + e.what);
  }
}

Result<nlohmann::json> ParseYaml(std::string_view text) {
  if (Status utf8 = CheckUtf8(text); !utf8.ok()) return utf8;
  try {
    Budget budget;
    return ToJson(YAML::Load(std::string(text)), budget);
  } catch (const YAML::Exception& e) {
    return YamlError(e);
  } catch (const TooLarge& e) {
    return Status::Error(std::string("invalid YAML: ") + e.what);
  }
}

std::string ToYaml(const nlohmann::json& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  out.SetMapFormat(YAML::Block);
  Emit(out, value);
  return std::string(out.c_str()) + "\n";
}

}  // namespace tern
