#include "init/flags.h"

#include <charconv>
#include <map>

namespace tern::init {

const char* const kInitUsage = R"(usage: tern-init [flags]
Programs traffic capture for the pod's network namespace (one nftables table, "inet tern").
  -p, --envoy-port PORT                          outbound capture port (15001)
  -z, --inbound-capture-port PORT                inbound capture port (15006)
  -u, --proxy-uid UID                            the proxy's uid, never captured (1337)
  -g, --proxy-gid GID                            the proxy's gid, never captured (1337)
  -m, --istio-inbound-interception-mode MODE     REDIRECT | TPROXY | NONE (REDIRECT)
  -b, --istio-inbound-ports PORTS                inbound ports to capture, "*" for all (*)
  -d, --istio-local-exclude-ports PORTS          inbound ports not to capture
  -q, --istio-local-outbound-ports-include PORTS outbound ports always captured
  -o, --istio-local-outbound-ports-exclude PORTS outbound ports never captured
  -i, --istio-service-cidr CIDRS                 outbound ranges to capture, "*" for all (*)
  -x, --istio-service-exclude-cidr CIDRS         outbound ranges never captured
  -c, --istio-exclude-interfaces IFACES          interfaces whose traffic is never captured
  -k, --kube-virt-interfaces IFACES              interfaces whose inbound traffic is outbound
  -t, --istio-inbound-tproxy-mark MARK           TPROXY packet mark (1337)
  -r, --istio-inbound-tproxy-route-table TABLE   TPROXY route table (133)
      --ipv6=false                               leave IPv6 traffic alone
      --capture-dns                              redirect DNS (UDP 53) to 15053
  -n, --dry-run                                  print the ruleset, change nothing
      --cleanup                                  remove Tern's table and routes
      --run-validation                           prove from inside the pod (as a non-proxy uid)
                                                 that outbound capture is in place
      --validation-timeout MS                    how long validation keeps trying (10000)
Each flag can also come from the environment: the long name in upper snake case
(ISTIO_INBOUND_PORTS=...); a flag on the command line wins.
)";

namespace {

struct FlagSpec {
  char short_name;
  const char* long_name;
  bool takes_value;
};

constexpr FlagSpec kFlags[] = {
    {'p', "envoy-port", true},
    {'z', "inbound-capture-port", true},
    {'u', "proxy-uid", true},
    {'g', "proxy-gid", true},
    {'m', "istio-inbound-interception-mode", true},
    {'b', "istio-inbound-ports", true},
    {'d', "istio-local-exclude-ports", true},
    {'q', "istio-local-outbound-ports-include", true},
    {'o', "istio-local-outbound-ports-exclude", true},
    {'i', "istio-service-cidr", true},
    {'x', "istio-service-exclude-cidr", true},
    {'c', "istio-exclude-interfaces", true},
    {'k', "kube-virt-interfaces", true},
    {'t', "istio-inbound-tproxy-mark", true},
    {'r', "istio-inbound-tproxy-route-table", true},
    {0, "ipv6", true},
    {0, "capture-dns", false},
    {'n', "dry-run", false},
    {0, "cleanup", false},
    {0, "run-validation", false},
    {0, "validation-timeout", true},
    {'h', "help", false},
};

std::string EnvName(const char* long_name) {
  std::string out;
  for (const char* p = long_name; *p; ++p) out += *p == '-' ? '_' : static_cast<char>(std::toupper(*p));
  return out;
}

std::string Display(const FlagSpec& f) {
  return f.short_name ? std::string("-") + f.short_name + "/--" + f.long_name : std::string("--") + f.long_name;
}

template <class T>
void Number(const std::map<std::string, std::string>& v, const FlagSpec& f, T min, T max, T& out, FieldErrors& errors) {
  auto it = v.find(f.long_name);
  if (it == v.end()) return;
  T n{};
  auto [ptr, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), n);
  if (it->second.empty() || ec != std::errc() || ptr != it->second.data() + it->second.size() || n < min || n > max) {
    errors.Add(Display(f), "\"" + it->second + "\" is not a number from " + std::to_string(min) + " to " +
                               std::to_string(max));
    return;
  }
  out = n;
}

bool Boolean(const std::string& v, bool* out) {
  if (v == "true" || v == "1" || v.empty()) *out = true;
  else if (v == "false" || v == "0") *out = false;
  else return false;
  return true;
}

const FlagSpec& Spec(const char* long_name) {
  for (const auto& f : kFlags) {
    if (std::string(f.long_name) == long_name) return f;
  }
  return kFlags[0];
}

}  // namespace

Result<InitOptions> ParseInitFlags(const std::vector<std::string>& args, const EnvLookup& env) {
  std::map<std::string, std::string> values;  // long name -> value ("" for switches)
  FieldErrors errors;
  for (const auto& f : kFlags) {
    if (auto v = env(EnvName(f.long_name))) values[f.long_name] = *v;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    const FlagSpec* spec = nullptr;
    std::string value;
    bool inline_value = false;
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
      for (const auto& f : kFlags) {
        if (name == f.long_name) spec = &f;
      }
    } else if (a.size() == 2 && a[0] == '-') {
      for (const auto& f : kFlags) {
        if (f.short_name && a[1] == f.short_name) spec = &f;
      }
    }
    if (!spec) {
      errors.Add(a, "unknown flag");
      continue;
    }
    if (spec->takes_value && !inline_value) {
      if (i + 1 >= args.size()) {
        errors.Add(Display(*spec), "needs a value");
        continue;
      }
      value = args[++i];
    }
    values[spec->long_name] = value;
  }

  InitOptions o;
  capture::CaptureText text;
  auto take = [&](const char* name, std::string& out) {
    auto it = values.find(name);
    if (it != values.end()) out = it->second;
  };
  take("istio-inbound-interception-mode", text.mode);
  take("istio-inbound-ports", text.include_inbound_ports);
  take("istio-local-exclude-ports", text.exclude_inbound_ports);
  take("istio-local-outbound-ports-include", text.include_outbound_ports);
  take("istio-local-outbound-ports-exclude", text.exclude_outbound_ports);
  take("istio-service-cidr", text.include_outbound_ranges);
  take("istio-service-exclude-cidr", text.exclude_outbound_ranges);
  take("istio-exclude-interfaces", text.exclude_interfaces);
  take("kube-virt-interfaces", text.kube_virt_interfaces);
  o.config = capture::ParseCaptureText(
      text,
      {Display(Spec("istio-inbound-interception-mode")), Display(Spec("istio-inbound-ports")),
       Display(Spec("istio-local-exclude-ports")), Display(Spec("istio-local-outbound-ports-include")),
       Display(Spec("istio-local-outbound-ports-exclude")), Display(Spec("istio-service-cidr")),
       Display(Spec("istio-service-exclude-cidr")), Display(Spec("istio-exclude-interfaces")),
       Display(Spec("kube-virt-interfaces"))},
      errors);
  Number<uint16_t>(values, Spec("envoy-port"), 1, 65535, o.config.outbound_port, errors);
  Number<uint16_t>(values, Spec("inbound-capture-port"), 1, 65535, o.config.inbound_port, errors);
  Number<uint32_t>(values, Spec("proxy-uid"), 0, 4294967294u, o.config.proxy_uid, errors);
  Number<uint32_t>(values, Spec("proxy-gid"), 0, 4294967294u, o.config.proxy_gid, errors);
  Number<uint32_t>(values, Spec("istio-inbound-tproxy-mark"), 1, 4294967295u, o.config.tproxy_mark, errors);
  Number<uint32_t>(values, Spec("istio-inbound-tproxy-route-table"), 1, 4294967294u, o.config.tproxy_route_table,
                   errors);
  for (auto [name, target] : {std::pair{"ipv6", &o.config.ipv6}, std::pair{"capture-dns", &o.config.capture_dns},
                              std::pair{"dry-run", &o.dry_run}, std::pair{"cleanup", &o.cleanup},
                              std::pair{"run-validation", &o.run_validation}, std::pair{"help", &o.help}}) {
    auto it = values.find(name);
    if (it != values.end() && !Boolean(it->second, target)) {
      errors.Add(Display(Spec(name)), "\"" + it->second + "\" is not true or false");
    }
  }
  Number<int>(values, Spec("validation-timeout"), 100, 600000, o.validation_timeout_ms, errors);
  if (o.cleanup && o.dry_run) errors.Add("--cleanup", "cannot be combined with --dry-run");
  if (o.run_validation && (o.cleanup || o.dry_run)) {
    errors.Add("--run-validation", "cannot be combined with --cleanup or --dry-run");
  }
  if (!errors.empty()) return errors.ToStatus();
  return o;
}

}  // namespace tern::init
