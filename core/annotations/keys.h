// The label and annotation keys Tern reads and writes. Istio's keys are kept as they are so
// that users' manifests and tooling carry over; Tern's own keys live under tern.dev/.
#pragma once

namespace tern::keys {

// Labels.
inline constexpr const char* kInjectionNamespaceLabel = "istio-injection";  // enabled | disabled
inline constexpr const char* kRevisionLabel = "istio.io/rev";
inline constexpr const char* kInjectLabel = "sidecar.istio.io/inject";  // also the legacy annotation
inline constexpr const char* kTlsModeLabel = "security.istio.io/tlsMode";
inline constexpr const char* kCanonicalNameLabel = "service.istio.io/canonical-name";
inline constexpr const char* kCanonicalRevisionLabel = "service.istio.io/canonical-revision";
inline constexpr const char* kNamespaceNameLabel = "kubernetes.io/metadata.name";

// Annotations written by the injector.
inline constexpr const char* kStatusAnnotation = "sidecar.istio.io/status";
inline constexpr const char* kDefaultContainerAnnotation = "kubectl.kubernetes.io/default-container";
inline constexpr const char* kDefaultLogsContainerAnnotation = "kubectl.kubernetes.io/default-logs-container";
inline constexpr const char* kPrometheusScrape = "prometheus.io/scrape";
inline constexpr const char* kPrometheusPort = "prometheus.io/port";
inline constexpr const char* kPrometheusPath = "prometheus.io/path";

// Annotations that tune the sidecar.
inline constexpr const char* kProxyCpu = "sidecar.istio.io/proxyCPU";
inline constexpr const char* kProxyMemory = "sidecar.istio.io/proxyMemory";
inline constexpr const char* kProxyCpuLimit = "sidecar.istio.io/proxyCPULimit";
inline constexpr const char* kProxyMemoryLimit = "sidecar.istio.io/proxyMemoryLimit";
inline constexpr const char* kInterceptionMode = "sidecar.istio.io/interceptionMode";
inline constexpr const char* kRewriteAppHttpProbers = "sidecar.istio.io/rewriteAppHTTPProbers";
inline constexpr const char* kNativeSidecar = "sidecar.istio.io/nativeSidecar";
inline constexpr const char* kUserVolume = "sidecar.istio.io/userVolume";
inline constexpr const char* kUserVolumeMount = "sidecar.istio.io/userVolumeMount";
inline constexpr const char* kProxyConfig = "proxy.istio.io/config";
inline constexpr const char* kStatusPort = "status.sidecar.istio.io/port";
inline constexpr const char* kReadinessInitialDelay = "readiness.status.sidecar.istio.io/initialDelaySeconds";
inline constexpr const char* kReadinessPeriod = "readiness.status.sidecar.istio.io/periodSeconds";
inline constexpr const char* kReadinessFailureThreshold = "readiness.status.sidecar.istio.io/failureThreshold";
inline constexpr const char* kReadinessApplicationPorts = "readiness.status.sidecar.istio.io/applicationPorts";

// Capture.
inline constexpr const char* kIncludeInboundPorts = "traffic.sidecar.istio.io/includeInboundPorts";
inline constexpr const char* kExcludeInboundPorts = "traffic.sidecar.istio.io/excludeInboundPorts";
inline constexpr const char* kIncludeOutboundPorts = "traffic.sidecar.istio.io/includeOutboundPorts";
inline constexpr const char* kExcludeOutboundPorts = "traffic.sidecar.istio.io/excludeOutboundPorts";
inline constexpr const char* kIncludeOutboundIPRanges = "traffic.sidecar.istio.io/includeOutboundIPRanges";
inline constexpr const char* kExcludeOutboundIPRanges = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
inline constexpr const char* kExcludeInterfaces = "traffic.sidecar.istio.io/excludeInterfaces";
// Interfaces of KubeVirt VMs whose inbound traffic is the VM's outbound (read by tern-cni).
inline constexpr const char* kKubevirtInterfaces = "traffic.sidecar.istio.io/kubevirtInterfaces";

}  // namespace tern::keys
