#include "core/base/flags.h"

#include <charconv>

namespace tern {

void FlagSet::String(std::string name, std::string* into, std::string help) {
  Custom(std::move(name), [into](std::string_view v) { return *into = std::string(v), std::string(); }, std::move(help));
}

void FlagSet::Int(std::string name, long* into, long min, long max, std::string help) {
  Custom(
      std::move(name),
      [into, min, max](std::string_view v) -> std::string {
        long n = 0;
        auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
        if (v.empty() || ec != std::errc() || end != v.data() + v.size() || n < min || n > max) {
          return "\"" + std::string(v) + "\" is not a number from " + std::to_string(min) + " to " + std::to_string(max);
        }
        *into = n;
        return "";
      },
      std::move(help));
}

void FlagSet::Bool(std::string name, bool* into, std::string help) {
  Custom(
      std::move(name),
      [into](std::string_view v) -> std::string {
        if (v == "true" || v == "1") *into = true;
        else if (v == "false" || v == "0") *into = false;
        else return "\"" + std::string(v) + "\" is not true or false";
        return "";
      },
      std::move(help));
  flags_.back().takes_value = false;
}

void FlagSet::Custom(std::string name, std::function<std::string(std::string_view)> parse, std::string help) {
  flags_.push_back({std::move(name), std::move(help), true, std::move(parse)});
}

FlagSet::Flag* FlagSet::Find(std::string_view name) {
  for (auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool FlagSet::Given(std::string_view name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return f.given;
  }
  return false;
}

Status FlagSet::Parse(int argc, const char* const* argv, bool* help_wanted) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      if (help_wanted) *help_wanted = true;
      return Status::Ok();
    }
    if (arg.size() < 3 || arg.substr(0, 2) != "--") return Status::Error("unexpected argument \"" + std::string(arg) + "\"");
    std::string_view name = arg.substr(2), value;
    bool inline_value = false;
    if (size_t eq = name.find('='); eq != std::string_view::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    Flag* flag = Find(name);
    if (!flag) return Status::Error("unknown flag --" + std::string(name));
    if (!inline_value) {
      if (!flag->takes_value) {
        value = "true";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return Status::Error("--" + flag->name + " needs a value");
      }
    }
    if (std::string problem = flag->parse(value); !problem.empty()) return Status::Error("--" + flag->name + ": " + problem);
    flag->given = true;
  }
  return Status::Ok();
}

std::string FlagSet::Usage() const {
  std::string out = "usage: " + program_ + " [flags]\n";
  for (const auto& f : flags_) {
    std::string left = "  --" + f.name + (f.takes_value ? " VALUE" : "");
    if (left.size() < 30) left.resize(30, ' ');
    else left += "\n" + std::string(30, ' ');
    out += left + f.help + "\n";
  }
  return out;
}

}  // namespace tern
