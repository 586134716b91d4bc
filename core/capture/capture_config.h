// What traffic capture must do for one pod, fully resolved: the input of the capture planner.
// The webhook writes it as tern-init flags, tern-init parses the flags, tern-cni derives it
// from the pod's annotations; all three meet here, so the text forms are parsed in one place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/annotations/sidecar_annotations.h"
#include "core/base/field_errors.h"
#include "core/net/ip_range.h"

namespace tern::capture {

struct CaptureConfig {
  InterceptionMode mode = InterceptionMode::kRedirect;
  uint32_t proxy_uid = 1337;
  uint32_t proxy_gid = 1337;
  uint16_t outbound_port = 15001;
  uint16_t inbound_port = 15006;
  PortList include_inbound_ports{.all = true};
  PortList exclude_inbound_ports;
  PortList include_outbound_ports;
  PortList exclude_outbound_ports;
  IpRangeList include_outbound_ranges{.all = true};
  IpRangeList exclude_outbound_ranges;
  std::vector<std::string> exclude_interfaces;
  // Interfaces whose inbound traffic is really outbound (KubeVirt VMs behind a bridge): it goes
  // to the outbound listener.
  std::vector<std::string> kube_virt_interfaces;
  bool ipv6 = true;
  bool capture_dns = false;
  uint16_t dns_port = 15053;
  uint32_t tproxy_mark = 1337;
  uint32_t tproxy_route_table = 133;
};

// The proxy's own listeners; inbound traffic to them is never captured.
inline constexpr uint16_t kProxyOwnPorts[] = {15000, 15020, 15021, 15090};

// The capture settings in the text forms flags and annotations use.
struct CaptureText {
  std::string mode = "REDIRECT";
  std::string include_inbound_ports = "*";
  std::string exclude_inbound_ports;
  std::string include_outbound_ports;
  std::string exclude_outbound_ports;
  std::string include_outbound_ranges = "*";
  std::string exclude_outbound_ranges;
  std::string exclude_interfaces;
  std::string kube_virt_interfaces;
};

// Parses every field; errors are added as "<prefix><field name>: message" with the field names
// the caller uses (flag names for tern-init, annotation keys for tern-cni).
struct CaptureFieldNames {
  std::string mode, include_inbound_ports, exclude_inbound_ports, include_outbound_ports, exclude_outbound_ports,
      include_outbound_ranges, exclude_outbound_ranges, exclude_interfaces, kube_virt_interfaces;
};
CaptureConfig ParseCaptureText(const CaptureText& text, const CaptureFieldNames& names, FieldErrors& errors);

}  // namespace tern::capture
