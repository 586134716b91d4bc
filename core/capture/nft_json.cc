#include "core/capture/nft_json.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace tern::capture {
namespace {

using nlohmann::json;

// nft's named base-chain priorities.
int Priority(const std::string& p) {
  if (p == "raw") return -300;
  if (p == "mangle") return -150;
  if (p == "dstnat") return -100;
  if (p == "filter") return 0;
  if (p == "security") return 50;
  if (p == "srcnat") return 100;
  int n = 0;
  std::from_chars(p.data() + (p.starts_with('+') ? 1 : 0), p.data() + p.size(), n);
  return n;
}

json Number(const std::string& s) {
  long long n = 0;
  std::from_chars(s.data(), s.data() + s.size(), n);
  return n;
}

// "10.0.0.0/8" as a prefix expression; a bare address as itself.
json Address(const std::string& s) {
  size_t slash = s.find('/');
  if (slash == std::string::npos) return s;
  return {{"prefix", {{"addr", s.substr(0, slash)}, {"len", Number(s.substr(slash + 1))}}}};
}

json Protocol(const std::string& s) {
  if (s == "tcp") return 6;
  if (s == "udp") return 17;
  return Number(s);
}

json Right(const Match& m) {
  using F = Match::Field;
  json values = json::array();
  for (const auto& v : m.values) {
    switch (m.field) {
      case F::kDaddr:
      case F::kSaddr: values.push_back(Address(v)); break;
      case F::kL4Proto: values.push_back(Protocol(v)); break;
      case F::kIifname:
      case F::kOifname:
      case F::kNfProto: values.push_back(v); break;
      default: values.push_back(Number(v)); break;
    }
  }
  if (values.size() == 1) return values[0];
  return {{"set", values}};
}

json Left(const Match& m) {
  using F = Match::Field;
  const char* ip = m.family == Family::kIpv6 ? "ip6" : "ip";
  auto meta = [](const char* key) { return json{{"meta", {{"key", key}}}}; };
  auto payload = [](const char* proto, const char* field) {
    return json{{"payload", {{"protocol", proto}, {"field", field}}}};
  };
  switch (m.field) {
    case F::kL4Proto: return meta("l4proto");
    case F::kNfProto: return meta("nfproto");
    case F::kIifname: return meta("iifname");
    case F::kOifname: return meta("oifname");
    case F::kTcpDport: return payload("tcp", "dport");
    case F::kUdpDport: return payload("udp", "dport");
    case F::kSkuid: return meta("skuid");
    case F::kSkgid: return meta("skgid");
    case F::kDaddr: return payload(ip, "daddr");
    case F::kSaddr: return payload(ip, "saddr");
    case F::kSocketTransparent: return json{{"socket", {{"key", "transparent"}}}};
  }
  return nullptr;
}

json SetMark(uint32_t mark) { return {{"mangle", {{"key", {{"meta", {{"key", "mark"}}}}}, {"value", mark}}}}; }

void AddVerdict(const Verdict& v, json& expr) {
  using K = Verdict::Kind;
  switch (v.kind) {
    case K::kReturn: expr.push_back({{"return", nullptr}}); break;
    case K::kJump: expr.push_back({{"jump", {{"target", v.chain}}}}); break;
    case K::kRedirect: expr.push_back({{"redirect", {{"port", v.port}}}}); break;
    case K::kAccept:
      if (v.mark) expr.push_back(SetMark(v.mark));
      expr.push_back({{"accept", nullptr}});
      break;
    case K::kTproxy:
      expr.push_back(SetMark(v.mark));
      expr.push_back({{"tproxy", {{"family", v.family == Family::kIpv6 ? "ip6" : "ip"}, {"port", v.port}}}});
      break;
  }
}

}  // namespace

std::string RenderReplaceTransactionJson(const Ruleset& rs) {
  json table = {{"family", "inet"}, {"name", rs.table}};
  json cmds = json::array({{{"add", {{"table", table}}}}, {{"delete", {{"table", table}}}}, {{"add", {{"table", table}}}}});
  for (const Chain& c : rs.chains) {
    json chain = {{"family", "inet"}, {"table", rs.table}, {"name", c.name}};
    if (!c.type.empty()) {
      chain["type"] = c.type;
      chain["hook"] = c.hook;
      chain["prio"] = Priority(c.priority);
      chain["policy"] = "accept";
    }
    cmds.push_back({{"add", {{"chain", chain}}}});
  }
  for (const Chain& c : rs.chains) {
    for (const Rule& r : c.rules) {
      json expr = json::array();
      for (const Match& m : r.matches) {
        expr.push_back({{"match", {{"op", m.negated ? "!=" : "=="}, {"left", Left(m)}, {"right", Right(m)}}}});
      }
      AddVerdict(r.verdict, expr);
      json rule = {{"family", "inet"}, {"table", rs.table}, {"chain", c.name}, {"expr", expr}};
      if (!r.comment.empty()) rule["comment"] = r.comment;
      cmds.push_back({{"add", {{"rule", rule}}}});
    }
  }
  return json({{"nftables", cmds}}).dump();
}

}  // namespace tern::capture
