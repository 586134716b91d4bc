#include "core/net/ip_range.h"

#include <arpa/inet.h>

#include <charconv>

namespace tern {

std::vector<std::string> SplitList(std::string_view text, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(sep, start);
    if (end == std::string_view::npos) end = text.size();
    std::string_view item = text.substr(start, end - start);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.emplace_back(item);
    start = end + 1;
  }
  return out;
}

std::string IpRange::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(v6 ? AF_INET6 : AF_INET, address.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(prefix);
}

Result<IpRange> ParseIpRange(std::string_view text) {
  size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Status::Error("\"" + std::string(text) + "\" is not a CIDR range (missing /prefix)");
  }
  std::string addr(text.substr(0, slash));
  std::string_view prefix_text = text.substr(slash + 1);
  IpRange r;
  if (inet_pton(AF_INET, addr.c_str(), r.address.data()) == 1) {
    r.v6 = false;
  } else if (inet_pton(AF_INET6, addr.c_str(), r.address.data()) == 1) {
    r.v6 = true;
  } else {
    return Status::Error("\"" + std::string(text) + "\" is not a CIDR range (bad address \"" + addr + "\")");
  }
  int prefix = -1;
  auto [ptr, ec] = std::from_chars(prefix_text.data(), prefix_text.data() + prefix_text.size(), prefix);
  int max = r.v6 ? 128 : 32;
  if (prefix_text.empty() || ec != std::errc() || ptr != prefix_text.data() + prefix_text.size() || prefix < 0 ||
      prefix > max) {
    return Status::Error("\"" + std::string(text) + "\" is not a CIDR range (prefix length must be 0.." +
                         std::to_string(max) + ")");
  }
  r.prefix = prefix;
  return r;
}

bool IsIpAddress(std::string_view text) {
  std::string addr(text);
  std::array<uint8_t, 16> buf;
  return inet_pton(AF_INET, addr.c_str(), buf.data()) == 1 || inet_pton(AF_INET6, addr.c_str(), buf.data()) == 1;
}

Result<IpRangeList> ParseIpRangeList(std::string_view text, bool allow_wildcard) {
  IpRangeList list;
  for (const auto& item : SplitList(text)) {
    if (item == "*") {
      if (!allow_wildcard) return Status::Error("\"*\" is not allowed here");
      list.all = true;
      continue;
    }
    auto r = ParseIpRange(item);
    if (!r.ok()) return r.status();
    list.ranges.push_back(*r);
  }
  if (list.all && !list.ranges.empty()) return Status::Error("\"*\" cannot be combined with other ranges");
  return list;
}

Result<PortList> ParsePortList(std::string_view text, bool allow_wildcard) {
  PortList list;
  for (const auto& item : SplitList(text)) {
    if (item == "*") {
      if (!allow_wildcard) return Status::Error("\"*\" is not allowed here");
      list.all = true;
      continue;
    }
    long value = -1;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (ec != std::errc() || ptr != item.data() + item.size()) {
      return Status::Error("\"" + item + "\" is not a port number");
    }
    if (value < 1 || value > 65535) return Status::Error("port " + item + " is out of range 1-65535");
    list.ports.push_back(static_cast<uint16_t>(value));
  }
  if (list.all && !list.ports.empty()) return Status::Error("\"*\" cannot be combined with other ports");
  return list;
}

}  // namespace tern
