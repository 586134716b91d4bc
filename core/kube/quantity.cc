#include "core/kube/quantity.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <utility>

namespace tern {

Result<double> ParseQuantity(std::string_view text) {
  auto bad = [&](const char* why) {
    return Status::Error("\"" + std::string(text) + "\" is not a resource quantity (" + why + ")");
  };
  if (text.empty()) return bad("empty");
  size_t i = 0;
  bool negative = false;
  if (text[i] == '+' || text[i] == '-') negative = text[i++] == '-';
  size_t digits_start = i;
  bool seen_digit = false, seen_dot = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9') seen_digit = true;
    else if (c == '.' && !seen_dot) seen_dot = true;
    else break;
  }
  if (!seen_digit) return bad("no digits");
  // strtod, not stod: an absurdly long number saturates to infinity instead of throwing.
  double number = std::strtod(std::string(text.substr(digits_start, i - digits_start)).c_str(), nullptr);
  std::string_view suffix = text.substr(i);
  static const std::pair<std::string_view, double> kSuffixes[] = {
      {"", 1},          {"m", 1e-3},       {"k", 1e3},           {"M", 1e6},           {"G", 1e9},
      {"T", 1e12},      {"P", 1e15},       {"E", 1e18},          {"Ki", 1024.0},       {"Mi", 1048576.0},
      {"Gi", 1073741824.0}, {"Ti", 1099511627776.0}, {"Pi", 1125899906842624.0}, {"Ei", 1152921504606846976.0}};
  double scale = 0;
  for (const auto& [name, factor] : kSuffixes) {
    if (suffix == name) scale = factor;
  }
  if (scale == 0 && !suffix.empty() && (suffix[0] == 'e' || suffix[0] == 'E')) {
    std::string_view exp = suffix.substr(1);
    size_t j = 0;
    if (!exp.empty() && (exp[0] == '+' || exp[0] == '-')) ++j;
    if (j == exp.size()) return bad("incomplete exponent");
    for (; j < exp.size(); ++j) {
      if (exp[j] < '0' || exp[j] > '9') return bad("bad exponent");
    }
    scale = std::pow(10.0, std::strtod(std::string(exp).c_str(), nullptr));
  }
  if (scale == 0) return bad("unknown suffix");
  double value = number * scale;
  if (!std::isfinite(value)) return bad("out of range");
  return negative ? -value : value;
}

}  // namespace tern
