// The kernel side of capture: nftables through libnftables (one batch per call) and TPROXY's
// policy routing through libnl, both inside the target network namespace.
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/route.h>
#include <netlink/route/rule.h>
#include <nftables/libnftables.h>
#include <sys/socket.h>

#include <algorithm>
#include <memory>

#include "core/capture/applier.h"
#include "core/capture/netns.h"
#include "core/capture/nft_json.h"
#include "core/capture/nft_render.h"

namespace tern::capture {
namespace {

// Runs nft commands (text, or JSON when `json_input`) as one transaction and keeps nft's own
// words for errors.
Status RunNft(const std::string& commands, std::string* output, bool json_input = false, bool dry_run = false) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> ctx(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!ctx) return Status::Error("nftables: cannot create a context");
  // Dry run: parsed, evaluated and checked by the kernel, never committed.
  if (dry_run) nft_ctx_set_dry_run(ctx.get(), true);
  // libnftables takes JSON input when its output mode is JSON.
  if (json_input) nft_ctx_output_set_flags(ctx.get(), NFT_CTX_OUTPUT_JSON);
  nft_ctx_buffer_output(ctx.get());
  nft_ctx_buffer_error(ctx.get());
  int rc = nft_run_cmd_from_buffer(ctx.get(), commands.c_str());
  if (output) *output = nft_ctx_get_output_buffer(ctx.get());
  if (rc != 0) {
    // nft explains each failure with an "Error: ..." line followed by the input it points at;
    // the first explanation is the useful one-liner.
    std::string err = nft_ctx_get_error_buffer(ctx.get());
    size_t at = err.find("Error: ");
    if (at != std::string::npos) err = err.substr(at + 7, err.find('\n', at) - at - 7);
    while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
    return Status::Error("nftables refused the ruleset: " + err);
  }
  return Status::Ok();
}

constexpr uint32_t kRulePriority = 32000;  // before the main table's 32766

struct NlSocket {
  nl_sock* sock = nl_socket_alloc();
  ~NlSocket() {
    if (sock) nl_socket_free(sock);
  }
};

// `ip rule add fwmark M lookup T` and `ip route add local default dev lo table T`, per family.
// Adding what exists already is success, so applying twice is harmless.
// The error that stopped an apply, with what undoing its first steps said when that failed too:
// the rules left behind are then named, not silently kept.
Status WithUndo(const Status& error, const Status& undo) {
  if (undo.ok()) return error;
  return Status::Error(error.message() + "; undoing the policy routing also failed: " + undo.message());
}

Status PolicyRouting(const Ruleset& rs, bool add) {
  NlSocket nl;
  if (!nl.sock || nl_connect(nl.sock, NETLINK_ROUTE) < 0) return Status::Error("netlink: cannot connect");
  std::vector<int> families = {AF_INET};
  if (rs.ipv6) families.push_back(AF_INET6);
  for (int family : families) {
    rtnl_rule* rule = rtnl_rule_alloc();
    rtnl_rule_set_family(rule, family);
    // An explicit priority makes the rule identical each time: without one the kernel picks the
    // next free priority and NLM_F_EXCL no longer sees the earlier copy as the same rule.
    rtnl_rule_set_prio(rule, kRulePriority);
    rtnl_rule_set_mark(rule, rs.mark);
    rtnl_rule_set_mask(rule, 0xffffffff);
    rtnl_rule_set_table(rule, rs.route_table);
    rtnl_rule_set_action(rule, FR_ACT_TO_TBL);
    int err = add ? rtnl_rule_add(nl.sock, rule, NLM_F_CREATE | NLM_F_EXCL) : rtnl_rule_delete(nl.sock, rule, 0);
    rtnl_rule_put(rule);
    if (err < 0 && !(add && err == -NLE_EXIST) && !(!add && (err == -NLE_OBJ_NOTFOUND || err == -NLE_NOADDR))) {
      return Status::Error(std::string("netlink: cannot ") + (add ? "add" : "delete") + " the fwmark rule: " +
                           nl_geterror(err));
    }

    rtnl_route* route = rtnl_route_alloc();
    rtnl_route_set_family(route, static_cast<uint8_t>(family));
    rtnl_route_set_table(route, rs.route_table);
    rtnl_route_set_type(route, RTN_LOCAL);
    rtnl_route_set_scope(route, RT_SCOPE_HOST);
    nl_addr* dst = nullptr;
    nl_addr_parse(family == AF_INET ? "0.0.0.0/0" : "::/0", family, &dst);
    rtnl_route_set_dst(route, dst);
    nl_addr_put(dst);
    rtnl_nexthop* hop = rtnl_route_nh_alloc();
    rtnl_route_nh_set_ifindex(hop, 1);  // lo is interface 1 in every network namespace
    rtnl_route_add_nexthop(route, hop);
    err = add ? rtnl_route_add(nl.sock, route, NLM_F_CREATE | NLM_F_REPLACE) : rtnl_route_delete(nl.sock, route, 0);
    rtnl_route_put(route);
    if (err < 0 && !(!add && (err == -NLE_OBJ_NOTFOUND || err == -NLE_NOADDR))) {
      return Status::Error(std::string("netlink: cannot ") + (add ? "add" : "delete") + " the local route in table " +
                           std::to_string(rs.route_table) + ": " + nl_geterror(err));
    }
  }
  return Status::Ok();
}

// Whether the fwmark rule and the local route that Apply installs are both there, per family.
Status CheckPolicyRouting(const Ruleset& rs) {
  NlSocket nl;
  if (!nl.sock || nl_connect(nl.sock, NETLINK_ROUTE) < 0) return Status::Error("netlink: cannot connect");
  std::vector<int> families = {AF_INET};
  if (rs.ipv6) families.push_back(AF_INET6);
  for (int family : families) {
    const char* fam = family == AF_INET ? "IPv4" : "IPv6";
    nl_cache* rules = nullptr;
    if (rtnl_rule_alloc_cache(nl.sock, family, &rules) < 0) return Status::Error("netlink: cannot list rules");
    bool rule_found = false;
    for (nl_object* o = nl_cache_get_first(rules); o; o = nl_cache_get_next(o)) {
      auto* r = reinterpret_cast<rtnl_rule*>(o);
      rule_found |= rtnl_rule_get_family(r) == family && rtnl_rule_get_mark(r) == rs.mark && rtnl_rule_get_table(r) == rs.route_table &&
                    rtnl_rule_get_action(r) == FR_ACT_TO_TBL;
    }
    nl_cache_free(rules);
    if (!rule_found) {
      return Status::Error(std::string(fam) + " policy rule \"fwmark " + std::to_string(rs.mark) + " lookup " +
                           std::to_string(rs.route_table) + "\" is missing");
    }
    nl_cache* routes = nullptr;
    if (rtnl_route_alloc_cache(nl.sock, family, 0, &routes) < 0) return Status::Error("netlink: cannot list routes");
    bool route_found = false;
    for (nl_object* o = nl_cache_get_first(routes); o; o = nl_cache_get_next(o)) {
      auto* r = reinterpret_cast<rtnl_route*>(o);
      route_found |= rtnl_route_get_family(r) == family && rtnl_route_get_table(r) == rs.route_table && rtnl_route_get_type(r) == RTN_LOCAL &&
                     nl_addr_get_prefixlen(rtnl_route_get_dst(r)) == 0;
    }
    nl_cache_free(routes);
    if (!route_found) {
      return Status::Error(std::string(fam) + " route \"local default dev lo table " + std::to_string(rs.route_table) +
                           "\" is missing");
    }
  }
  return Status::Ok();
}

// "line N: expected `a`, found `b`" for the first line where two listings part.
std::string FirstDifference(const std::string& expected, const std::string& actual) {
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t at = 0;
    while (at < text.size()) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      std::string line = text.substr(at, nl - at);
      size_t b = line.find_first_not_of(" \t");
      out.push_back(b == std::string::npos ? "" : line.substr(b));
      at = nl + 1;
    }
    return out;
  };
  std::vector<std::string> e = lines(expected), a = lines(actual);
  for (size_t i = 0; i < std::max(e.size(), a.size()); ++i) {
    std::string want = i < e.size() ? e[i] : "(end)", got = i < a.size() ? a[i] : "(end)";
    if (want != got) return "line " + std::to_string(i + 1) + ": expected `" + want + "`, found `" + got + "`";
  }
  return "the listings differ";
}

class KernelApplier : public Applier {
 public:
  explicit KernelApplier(std::string netns) : netns_(std::move(netns)) {}

  Status Apply(const Ruleset& rs) override {
    return RunInNetns(netns_, [&]() -> Status {
      if (rs.tproxy_routing) {
        Status s = PolicyRouting(rs, true);
        if (!s.ok()) return WithUndo(s, PolicyRouting(rs, false));  // leave nothing half-installed
      }
      Status s = RunNft(RenderReplaceTransactionJson(rs), nullptr, true);
      if (!s.ok() && rs.tproxy_routing) return WithUndo(s, PolicyRouting(rs, false));
      return s;
    });
  }

  Status Remove(const Ruleset& rs) override {
    return RunInNetns(netns_, [&]() -> Status {
      Status s = RunNft(RenderDeleteTransaction(rs.table), nullptr);
      if (rs.tproxy_routing) {
        Status r = PolicyRouting(rs, false);
        if (s.ok()) s = r;
      }
      return s;
    });
  }

  Result<std::string> List(const std::string& table) override {
    std::string out;
    bool absent = false;
    Status s = RunInNetns(netns_, [&]() -> Status {
      Status listed = RunNft("list table inet " + table, &out);
      if (!listed.ok() && listed.message().find("No such file or directory") != std::string::npos) {
        absent = true;
        return Status::Ok();
      }
      return listed;
    });
    if (!s.ok()) return s;
    if (absent) return std::string();
    return out;
  }

  void Prewarm() override {
    // The first nft transaction of a process pays for loading and initialising libnftables
    // (several milliseconds); a dry run of a typical plan pays it here instead.
    static const std::string plan = RenderReplaceTransactionJson(BuildPlan(CaptureConfig{}));
    // A failed warm-up costs only the first real transaction its delay; that one reports.
    (void)RunInNetns(netns_, [] { return RunNft(plan, nullptr, true, true); });
  }

  Status Verify(const Ruleset& rs) override {
    auto actual = List(rs.table);
    if (!actual.ok()) return actual.status();
    if (actual->empty()) return Status::Error("table inet " + rs.table + " is missing");
    // The kernel normalises what it is given (sets, prefixes, spacing), so the plan is compared
    // as the kernel reads it back after applying it in a namespace of its own.
    std::string expected;
    Status s = RunInScratchNetns([&]() -> Status {
      Status applied = RunNft(RenderReplaceTransactionJson(rs), nullptr, true);
      if (!applied.ok()) return applied;
      return RunNft("list table inet " + rs.table, &expected);
    });
    if (!s.ok()) return s;
    if (*actual != expected) {
      return Status::Error("table inet " + rs.table + " differs from the plan at " + FirstDifference(expected, *actual));
    }
    if (!rs.tproxy_routing) return Status::Ok();
    return RunInNetns(netns_, [&] { return CheckPolicyRouting(rs); });
  }

 private:
  std::string netns_;
};

}  // namespace

std::unique_ptr<Applier> MakeKernelApplier(std::string netns_path) {
  return std::make_unique<KernelApplier>(std::move(netns_path));
}

}  // namespace tern::capture
