// The capture planner: a CaptureConfig in, a netfilter rule model out. Pure — no kernel, no
// text — so each semantic choice is testable on its own; nft_render.h turns the model into one
// nftables transaction. Semantics follow Istio's istio-iptables:
//  - inbound TCP to the pod is redirected to the proxy's inbound port, except excluded ports and
//    the proxy's own listeners;
//  - outbound TCP is redirected to the outbound port unless it comes from the proxy's uid/gid
//    (no loops), goes to loopback, or is excluded by port or CIDR;
//  - the proxy calling its own pod's IP (over lo) is sent through the inbound listener, so the
//    pod's inbound policy applies to it; an app calling itself over lo is left alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/capture/capture_config.h"

namespace tern::capture {

enum class Family { kAny, kIpv4, kIpv6 };

struct Match {
  enum class Field { kL4Proto, kNfProto, kIifname, kOifname, kTcpDport, kUdpDport, kSkuid, kSkgid, kDaddr, kSaddr,
                     kSocketTransparent };
  Field field;
  bool negated = false;
  std::vector<std::string> values;  // one value, or a set
  Family family = Family::kAny;     // for addresses: ip or ip6
};

struct Verdict {
  enum class Kind { kReturn, kJump, kRedirect, kTproxy, kAccept };
  Kind kind = Kind::kReturn;
  std::string chain;     // kJump
  uint16_t port = 0;     // kRedirect, kTproxy
  uint32_t mark = 0;     // kTproxy: packet mark set before diverting
  Family family = Family::kAny;  // kTproxy: ip or ip6
};

struct Rule {
  std::vector<Match> matches;
  Verdict verdict;
  std::string comment;
};

struct Chain {
  std::string name;
  // Base chains hook into the stack; regular chains (empty type) are only jumped to.
  std::string type;  // nat | filter | ""
  std::string hook;  // prerouting | output
  std::string priority;  // dstnat | mangle | -100 ...
  std::vector<Rule> rules;
};

struct Ruleset {
  std::string table = "tern";  // family inet: one table covers IPv4 and IPv6
  std::vector<Chain> chains;
  // TPROXY needs policy routing beside the rules: packets marked `mark` look up `route_table`,
  // whose only route delivers everything locally.
  bool tproxy_routing = false;
  uint32_t mark = 0;
  uint32_t route_table = 0;
  bool ipv6 = true;
};

Ruleset BuildPlan(const CaptureConfig& config);

}  // namespace tern::capture
