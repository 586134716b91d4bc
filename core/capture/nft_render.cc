#include "core/capture/nft_render.h"

namespace tern::capture {
namespace {

std::string Values(const std::vector<std::string>& values, bool quote) {
  auto one = [&](const std::string& v) { return quote ? "\"" + v + "\"" : v; };
  if (values.size() == 1) return one(values[0]);
  std::string out = "{ ";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? ", " : "") + one(values[i]);
  return out + " }";
}

std::string RenderMatch(const Match& m) {
  using F = Match::Field;
  std::string op = m.negated ? " != " : " ";
  const char* ip = m.family == Family::kIpv6 ? "ip6" : "ip";
  switch (m.field) {
    case F::kL4Proto: return "meta l4proto" + op + Values(m.values, false);
    case F::kNfProto: return "meta nfproto" + op + Values(m.values, false);
    case F::kIifname: return "iifname" + op + Values(m.values, true);
    case F::kOifname: return "oifname" + op + Values(m.values, true);
    case F::kTcpDport: return "tcp dport" + op + Values(m.values, false);
    case F::kUdpDport: return "udp dport" + op + Values(m.values, false);
    case F::kSkuid: return "meta skuid" + op + Values(m.values, false);
    case F::kSkgid: return "meta skgid" + op + Values(m.values, false);
    case F::kDaddr: return std::string(ip) + " daddr" + op + Values(m.values, false);
    case F::kSaddr: return std::string(ip) + " saddr" + op + Values(m.values, false);
    case F::kSocketTransparent: return "socket transparent" + op + Values(m.values, false);
  }
  return "";
}

std::string RenderVerdict(const Verdict& v) {
  using K = Verdict::Kind;
  switch (v.kind) {
    case K::kReturn: return "return";
    case K::kJump: return "jump " + v.chain;
    case K::kRedirect: return "redirect to :" + std::to_string(v.port);
    case K::kAccept: return v.mark ? "meta mark set " + std::to_string(v.mark) + " accept" : "accept";
    case K::kTproxy:
      return "meta mark set " + std::to_string(v.mark) + " tproxy " + (v.family == Family::kIpv6 ? "ip6" : "ip") +
             " to :" + std::to_string(v.port);
  }
  return "";
}

}  // namespace

std::string RenderTable(const Ruleset& rs) {
  std::string out = "table inet " + rs.table + " {\n";
  for (size_t i = 0; i < rs.chains.size(); ++i) {
    const Chain& c = rs.chains[i];
    out += (i ? "\n" : "") + std::string("\tchain ") + c.name + " {\n";
    if (!c.type.empty()) {
      out += "\t\ttype " + c.type + " hook " + c.hook + " priority " + c.priority + "; policy accept;\n";
    }
    for (const Rule& r : c.rules) {
      out += "\t\t";
      for (const Match& m : r.matches) out += RenderMatch(m) + " ";
      out += RenderVerdict(r.verdict);
      if (!r.comment.empty()) out += " comment \"" + r.comment + "\"";
      out += "\n";
    }
    out += "\t}\n";
  }
  return out + "}\n";
}

std::string RenderReplaceTransaction(const Ruleset& rs) {
  return "add table inet " + rs.table + "\ndelete table inet " + rs.table + "\n" + RenderTable(rs);
}

std::string RenderDeleteTransaction(const std::string& table) {
  return "add table inet " + table + "\ndelete table inet " + table + "\n";
}

}  // namespace tern::capture
