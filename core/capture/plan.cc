#include "core/capture/plan.h"

#include <algorithm>
#include <set>

namespace tern::capture {
namespace {

using F = Match::Field;
using V = Verdict::Kind;

Match M(F field, std::vector<std::string> values, bool negated = false, Family family = Family::kAny) {
  return Match{field, negated, std::move(values), family};
}
Verdict Return() { return {V::kReturn}; }
Verdict Jump(std::string chain) { return {V::kJump, std::move(chain)}; }
Verdict Redirect(uint16_t port) { return {V::kRedirect, "", port}; }

std::vector<std::string> PortValues(const std::vector<uint16_t>& ports) {
  std::set<uint16_t> unique(ports.begin(), ports.end());
  std::vector<std::string> out;
  for (uint16_t p : unique) out.push_back(std::to_string(p));
  return out;
}

// A range with its host bits cleared ("10.96.0.1/24" -> "10.96.0.0/24"), as the kernel compares.
std::string Network(const IpRange& r) {
  IpRange n = r;
  int bytes = n.v6 ? 16 : 4;
  for (int i = 0; i < bytes; ++i) {
    int keep = std::clamp(r.prefix - i * 8, 0, 8);
    n.address[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xFF << (8 - keep));
  }
  return n.ToString();
}

// One rule per range: nftables refuses anonymous sets whose intervals overlap, and users' lists
// often do ("10.96.0.2/24,10.96.0.3/24").
void RangeRules(std::vector<Rule>& rules, const std::vector<IpRange>& ranges, bool ipv6, const Verdict& verdict,
                const std::string& comment, std::vector<Match> extra = {}) {
  std::set<std::string> seen;
  for (const auto& r : ranges) {
    if (r.v6 && !ipv6) continue;
    std::string net = Network(r);
    if (!seen.insert(net).second) continue;
    std::vector<Match> m = extra;
    m.push_back(M(F::kDaddr, {net}, false, r.v6 ? Family::kIpv6 : Family::kIpv4));
    rules.push_back({m, verdict, comment});
  }
}

std::string Num(uint32_t v) { return std::to_string(v); }

Chain InboundChain(const CaptureConfig& c) {
  Chain chain{"inbound", "", "", "", {}};
  std::vector<uint16_t> excluded(std::begin(kProxyOwnPorts), std::end(kProxyOwnPorts));
  excluded.insert(excluded.end(), c.exclude_inbound_ports.ports.begin(), c.exclude_inbound_ports.ports.end());
  chain.rules.push_back({{M(F::kTcpDport, PortValues(excluded))}, Return(), "proxy's own and excluded inbound ports"});
  Verdict to_proxy = Redirect(c.inbound_port);
  if (c.mode == InterceptionMode::kTproxy) {
    // Connections already owned by a transparent socket keep flowing to it.
    chain.rules.push_back({{M(F::kSocketTransparent, {"1"})},
                           {V::kAccept, "", 0, c.tproxy_mark},
                           "established transparent connections"});
  }
  auto add = [&](std::vector<Match> m, const std::string& comment) {
    if (c.mode == InterceptionMode::kTproxy) {
      // tproxy needs the address family spelled out; one rule per family.
      for (Family f : {Family::kIpv4, Family::kIpv6}) {
        if (f == Family::kIpv6 && !c.ipv6) continue;
        std::vector<Match> fm = m;
        fm.insert(fm.begin(), M(F::kNfProto, {f == Family::kIpv4 ? "ipv4" : "ipv6"}));
        chain.rules.push_back({fm, {V::kTproxy, "", c.inbound_port, c.tproxy_mark, f}, comment});
      }
    } else {
      chain.rules.push_back({std::move(m), to_proxy, comment});
    }
  };
  if (c.include_inbound_ports.all) {
    add({M(F::kL4Proto, {"tcp"})}, "all other inbound TCP to the proxy");
  } else if (!c.include_inbound_ports.ports.empty()) {
    add({M(F::kTcpDport, PortValues(c.include_inbound_ports.ports))}, "included inbound ports to the proxy");
  }
  return chain;
}

Chain OutboundChain(const CaptureConfig& c) {
  Chain chain{"outbound", "", "", "", {}};
  auto& r = chain.rules;
  r.push_back({{M(F::kSaddr, {"127.0.0.6"}, false, Family::kIpv4), M(F::kOifname, {"lo"})}, Return(),
               "proxy's inbound passthrough connections"});
  if (c.ipv6) {
    r.push_back({{M(F::kSaddr, {"::6"}, false, Family::kIpv6), M(F::kOifname, {"lo"})}, Return(),
                 "proxy's inbound passthrough connections"});
  }
  for (auto [field, id] : {std::pair{F::kSkuid, c.proxy_uid}, std::pair{F::kSkgid, c.proxy_gid}}) {
    const char* who = field == F::kSkuid ? "uid" : "gid";
    r.push_back({{M(F::kOifname, {"lo"}), M(field, {Num(id)}), M(F::kDaddr, {"127.0.0.1"}, true, Family::kIpv4),
                  M(F::kL4Proto, {"tcp"})},
                 Redirect(c.inbound_port),
                 std::string("proxy ") + who + " calling its own pod: through the inbound listener"});
    if (c.ipv6) {
      r.push_back({{M(F::kOifname, {"lo"}), M(field, {Num(id)}), M(F::kDaddr, {"::1"}, true, Family::kIpv6),
                    M(F::kL4Proto, {"tcp"})},
                   Redirect(c.inbound_port),
                   std::string("proxy ") + who + " calling its own pod: through the inbound listener"});
    }
    r.push_back({{M(F::kOifname, {"lo"}), M(field, {Num(id)}, true)}, Return(),
                 std::string("app calling itself over lo (") + who + ")"});
    r.push_back({{M(field, {Num(id)})}, Return(), std::string("the proxy's own traffic (") + who + "): no loops"});
  }
  r.push_back({{M(F::kDaddr, {"127.0.0.1/32"}, false, Family::kIpv4)}, Return(), "loopback"});
  if (c.ipv6) r.push_back({{M(F::kDaddr, {"::1/128"}, false, Family::kIpv6)}, Return(), "loopback"});
  if (!c.exclude_outbound_ports.ports.empty()) {
    r.push_back({{M(F::kTcpDport, PortValues(c.exclude_outbound_ports.ports))}, Return(), "excluded outbound ports"});
  }
  RangeRules(r, c.exclude_outbound_ranges.ranges, c.ipv6, Return(), "excluded outbound range");
  if (!c.include_outbound_ports.ports.empty()) {
    r.push_back({{M(F::kTcpDport, PortValues(c.include_outbound_ports.ports))}, Redirect(c.outbound_port),
                 "included outbound ports to the proxy"});
  }
  if (c.include_outbound_ranges.all) {
    r.push_back({{M(F::kL4Proto, {"tcp"})}, Redirect(c.outbound_port), "all other outbound TCP to the proxy"});
  } else {
    RangeRules(r, c.include_outbound_ranges.ranges, c.ipv6, Redirect(c.outbound_port), "included outbound range",
               {M(F::kL4Proto, {"tcp"})});
  }
  return chain;
}

// Restricts a hook chain's entry to IPv4 when IPv6 capture is off: with the inet family every
// rule would otherwise apply to both.
std::vector<Match> FamilyGuard(const CaptureConfig& c, std::vector<Match> m) {
  if (!c.ipv6) m.insert(m.begin(), M(F::kNfProto, {"ipv4"}));
  return m;
}

}  // namespace

Ruleset BuildPlan(const CaptureConfig& c) {
  Ruleset rs;
  rs.ipv6 = c.ipv6;
  if (c.mode == InterceptionMode::kNone) return rs;  // nothing to capture: an empty table

  Chain prerouting = c.mode == InterceptionMode::kTproxy ? Chain{"prerouting", "filter", "prerouting", "mangle", {}}
                                                          : Chain{"prerouting", "nat", "prerouting", "dstnat", {}};
  if (c.mode == InterceptionMode::kTproxy) {
    // Unlike nat chains, this filter chain sees every packet, including the pod's own traffic
    // looping back over lo after the output chain redirected it; that is never inbound.
    prerouting.rules.push_back({{M(F::kIifname, {"lo"})}, Return(), "the pod's own traffic over lo"});
  }
  if (!c.exclude_interfaces.empty()) {
    prerouting.rules.push_back({{M(F::kIifname, c.exclude_interfaces)}, Return(), "excluded interfaces"});
  }
  Rule vm_to_outbound{FamilyGuard(c, {M(F::kIifname, c.kube_virt_interfaces), M(F::kL4Proto, {"tcp"})}),
                      Redirect(c.outbound_port), "VM traffic is outbound traffic"};
  std::vector<Chain> extra;
  if (!c.kube_virt_interfaces.empty()) {
    if (c.mode == InterceptionMode::kRedirect) {
      prerouting.rules.push_back(vm_to_outbound);
    } else {
      // TPROXY's prerouting is a filter chain, where redirect is not allowed: VM traffic skips
      // it and is redirected by a nat chain of its own.
      prerouting.rules.push_back({{M(F::kIifname, c.kube_virt_interfaces)}, Return(), "VM traffic: see prerouting_vm"});
      extra.push_back(Chain{"prerouting_vm", "nat", "prerouting", "dstnat", {vm_to_outbound}});
    }
  }
  prerouting.rules.push_back({FamilyGuard(c, {M(F::kL4Proto, {"tcp"})}), Jump("inbound"), ""});

  Chain output{"output", "nat", "output", "-100", {}};
  if (!c.exclude_interfaces.empty()) {
    output.rules.push_back({{M(F::kOifname, c.exclude_interfaces)}, Return(), "excluded interfaces"});
  }
  if (c.capture_dns) {
    output.rules.push_back({FamilyGuard(c, {M(F::kUdpDport, {"53"}), M(F::kSkuid, {Num(c.proxy_uid)}, true),
                                            M(F::kSkgid, {Num(c.proxy_gid)}, true)}),
                            Redirect(c.dns_port), "DNS to the proxy's resolver"});
  }
  output.rules.push_back({FamilyGuard(c, {M(F::kL4Proto, {"tcp"})}), Jump("outbound"), ""});

  rs.chains = {prerouting, InboundChain(c), output, OutboundChain(c)};
  rs.chains.insert(rs.chains.end(), extra.begin(), extra.end());
  if (c.mode == InterceptionMode::kTproxy) {
    rs.tproxy_routing = true;
    rs.mark = c.tproxy_mark;
    rs.route_table = c.tproxy_route_table;
  }
  return rs;
}

}  // namespace tern::capture
