// Address ranges and port lists as users write them in traffic annotations and capture flags:
// "10.0.0.0/8,fd00::/8", "*", "80,443". Parsing is strict (Istio's rules): a range needs a
// prefix length, a port is 1..65535, and an error names the offending item.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace tern {

struct IpRange {
  bool v6 = false;
  std::array<uint8_t, 16> address{};  // network byte order; first 4 bytes for IPv4
  int prefix = 0;
  std::string ToString() const;  // canonical "a.b.c.d/n" with host bits kept as written
  bool operator==(const IpRange&) const = default;
};

// "10.0.0.0/8" or "fd00::/8".
Result<IpRange> ParseIpRange(std::string_view text);

// Whether `text` is an IPv4 or IPv6 address literal (no prefix, no brackets).
bool IsIpAddress(std::string_view text);

// A comma-separated list; "*" (alone) means every address. Empty text is an empty list.
struct IpRangeList {
  bool all = false;
  std::vector<IpRange> ranges;
};
Result<IpRangeList> ParseIpRangeList(std::string_view text, bool allow_wildcard);

// A comma-separated list of ports; "*" (alone) means every port where `allow_wildcard`.
struct PortList {
  bool all = false;
  std::vector<uint16_t> ports;
};
Result<PortList> ParsePortList(std::string_view text, bool allow_wildcard);

// Splits on commas and trims blanks; empty items are dropped.
std::vector<std::string> SplitList(std::string_view text, char sep = ',');

}  // namespace tern
