#include "core/capture/capture_config.h"

namespace tern::capture {

CaptureConfig ParseCaptureText(const CaptureText& text, const CaptureFieldNames& names, FieldErrors& errors) {
  CaptureConfig c;
  if (!ParseInterceptionMode(text.mode, &c.mode)) {
    errors.Add(names.mode, "\"" + text.mode + "\" is not one of REDIRECT, TPROXY, NONE");
  }
  auto ports = [&](const std::string& value, const std::string& name, bool wildcard, PortList& out) {
    auto r = ParsePortList(value, wildcard);
    if (r.ok()) out = *r;
    else errors.Add(name, r.status().message());
  };
  auto ranges = [&](const std::string& value, const std::string& name, bool wildcard, IpRangeList& out) {
    auto r = ParseIpRangeList(value, wildcard);
    if (r.ok()) out = *r;
    else errors.Add(name, r.status().message());
  };
  ports(text.include_inbound_ports, names.include_inbound_ports, true, c.include_inbound_ports);
  ports(text.exclude_inbound_ports, names.exclude_inbound_ports, false, c.exclude_inbound_ports);
  ports(text.include_outbound_ports, names.include_outbound_ports, false, c.include_outbound_ports);
  ports(text.exclude_outbound_ports, names.exclude_outbound_ports, false, c.exclude_outbound_ports);
  ranges(text.include_outbound_ranges, names.include_outbound_ranges, true, c.include_outbound_ranges);
  ranges(text.exclude_outbound_ranges, names.exclude_outbound_ranges, false, c.exclude_outbound_ranges);
  auto interfaces = [&](const std::string& value, const std::string& name, std::vector<std::string>& out) {
    for (const auto& iface : SplitList(value)) {
      if (iface.size() > 15 || iface.find_first_of("/ \t:\"'{}") != std::string::npos) {
        errors.Add(name, "\"" + iface + "\" is not an interface name");
      } else {
        out.push_back(iface);
      }
    }
  };
  interfaces(text.exclude_interfaces, names.exclude_interfaces, c.exclude_interfaces);
  interfaces(text.kube_virt_interfaces, names.kube_virt_interfaces, c.kube_virt_interfaces);
  return c;
}

}  // namespace tern::capture
