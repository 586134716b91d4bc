// The capture golden cases, shared by the pure golden test and the kernel test that applies
// each of them in a network namespace. Test-only.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/capture/capture_config.h"

namespace tern::capture {

struct PlanCase {
  std::string name;
  std::function<CaptureConfig()> config;
};

inline std::vector<PlanCase> PlanCases() {
  auto with = [](std::function<void(CaptureConfig&)> change) {
    return [change] {
      CaptureConfig c;
      change(c);
      return c;
    };
  };
  return {
      {"defaults", with([](CaptureConfig&) {})},
      {"exclude_inbound_ports", with([](CaptureConfig& c) { c.exclude_inbound_ports.ports = {4, 5, 6}; })},
      {"include_inbound_ports",
       with([](CaptureConfig& c) { c.include_inbound_ports = PortList{false, {1, 2, 3}}; })},
      {"no_inbound_capture", with([](CaptureConfig& c) { c.include_inbound_ports = PortList{}; })},
      {"exclude_outbound_ports", with([](CaptureConfig& c) { c.exclude_outbound_ports.ports = {7, 8, 9}; })},
      {"include_outbound_ports", with([](CaptureConfig& c) {
         c.include_outbound_ports.ports = {5432};
         c.include_outbound_ranges = IpRangeList{};
       })},
      {"include_outbound_ranges", with([](CaptureConfig& c) {
         c.include_outbound_ranges = *ParseIpRangeList("127.0.0.1/24,10.96.0.1/24,fd00::/8", true);
       })},
      {"exclude_outbound_ranges", with([](CaptureConfig& c) {
         c.exclude_outbound_ranges = *ParseIpRangeList("10.96.0.2/24,10.96.0.3/24,fd00:10::/64", false);
       })},
      {"exclude_interfaces", with([](CaptureConfig& c) { c.exclude_interfaces = {"net1", "net2"}; })},
      {"kube_virt_interfaces", with([](CaptureConfig& c) { c.kube_virt_interfaces = {"k6t-eth0"}; })},
      {"ipv4_only", with([](CaptureConfig& c) { c.ipv6 = false; })},
      {"dns_capture", with([](CaptureConfig& c) { c.capture_dns = true; })},
      {"custom_ports_and_ids", with([](CaptureConfig& c) {
         c.outbound_port = 16001;
         c.inbound_port = 16006;
         c.proxy_uid = 2000;
         c.proxy_gid = 3000;
       })},
      {"tproxy", with([](CaptureConfig& c) { c.mode = InterceptionMode::kTproxy; })},
      {"tproxy_kube_virt", with([](CaptureConfig& c) {
         c.mode = InterceptionMode::kTproxy;
         c.kube_virt_interfaces = {"k6t-eth0"};
       })},
  };
}

}  // namespace tern::capture
