// tern-cni's parsers and decisions, without a kernel: the network configuration, the CNI_*
// environment, prevResult conversion between spec versions, and which pods are captured how.
#include <gtest/gtest.h>

#include "cni-plugin/cni_env.h"
#include "cni-plugin/cni_version.h"
#include "cni-plugin/net_conf.h"
#include "cni-plugin/pod_capture.h"

namespace tern::cni {
namespace {

using nlohmann::json;

json Conf(json extra = json::object()) {
  json c = {{"cniVersion", "1.0.0"},
            {"name", "k8s-pod-network"},
            {"type", "tern-cni"},
            {"kubernetes", {{"kubeconfig", "/etc/cni/net.d/tern-cni.kubeconfig"}}}};
  c.merge_patch(extra);
  return c;
}

Error ConfError(const std::string& text) {
  NetConf conf;
  auto e = ParseNetConf(text, &conf);
  return e ? *e : Error{};
}

TEST(NetConf, ReadsTheFieldsTernDefines) {
  NetConf conf;
  json c = Conf({{"kubernetes", {{"excludeNamespaces", {"kube-system"}}, {"timeoutMs", 250}}},
                 {"runtimeConfig", {{"portMappings", json::array()}}},
                 {"prevResult", {{"cniVersion", "1.0.0"}, {"ips", json::array()}}}});
  ASSERT_FALSE(ParseNetConf(c.dump(), &conf));
  EXPECT_EQ(conf.cni_version, "1.0.0");
  EXPECT_EQ(conf.kubeconfig, "/etc/cni/net.d/tern-cni.kubeconfig");
  EXPECT_EQ(conf.exclude_namespaces, std::vector<std::string>{"kube-system"});
  EXPECT_EQ(conf.api_timeout.count(), 250);
  ASSERT_TRUE(conf.prev_result.has_value());
}

TEST(NetConf, EachBadInputHasItsCodeAndNamesTheField) {
  struct Case {
    std::string input;
    int code;
    std::string msg;
  } cases[] = {
      {"", kDecodeFailure, "network configuration: stdin is empty"},
      {"{\"cniVersion\": ", kDecodeFailure, "network configuration: not valid JSON: [json.exception.parse_error.101]"},
      {std::string(200, '[') + std::string(200, ']'), kDecodeFailure, "network configuration: nests deeper than 100 levels"},
      {"[1]", kDecodeFailure, "network configuration: must be a JSON object"},
      {Conf({{"cniVersion", nullptr}}).dump(), kInvalidConfig, "cniVersion: required"},
      {Conf({{"cniVersion", 1}}).dump(), kInvalidConfig, "cniVersion: must be a non-empty string"},
      {Conf({{"cniVersion", "0.2.0"}}).dump(), kIncompatibleVersion,
       "cniVersion: 0.2.0 is not supported (tern-cni speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"},
      {Conf({{"name", nullptr}}).dump(), kInvalidConfig, "name: required"},
      {Conf({{"kubernetes", nullptr}}).dump(), kInvalidConfig, "kubernetes: required (kubeconfig for reading pods)"},
      {Conf({{"kubernetes", {{"kubeconfig", nullptr}}}}).dump(), kInvalidConfig, "kubernetes.kubeconfig: required"},
      {Conf({{"kubernetes", {{"kubeConfig", "/x"}}}}).dump(), kUnsupportedField,
       "kubernetes.kubeConfig: unsupported field (value \"/x\")"},
      {Conf({{"kubernetes", {{"timeoutMs", 0}}}}).dump(), kInvalidConfig,
       "kubernetes.timeoutMs: must be an integer from 1 to 60000"},
      {Conf({{"kubernetes", {{"excludeNamespaces", {"a", 7}}}}}).dump(), kInvalidConfig,
       "kubernetes.excludeNamespaces[1]: must be a string"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input.substr(0, 80));
    Error e = ConfError(c.input);
    EXPECT_EQ(e.code, c.code);
    EXPECT_EQ(e.msg.substr(0, c.msg.size()), c.msg) << e.msg;
  }
}

TEST(NetConf, ErrorsAnswerInTheConfigurationsVersionWhenItCanBeRead) {
  EXPECT_EQ(VersionForErrors(Conf({{"cniVersion", "0.4.0"}}).dump()), "0.4.0");
  EXPECT_EQ(VersionForErrors("not json"), "1.1.0");
  EXPECT_EQ(VersionForErrors(Conf({{"cniVersion", "9.9.9"}}).dump()), "1.1.0");
}

TEST(CniEnv, RequiresWhatEachCommandNeeds) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars](const std::string& k) -> std::optional<std::string> {
      auto it = vars.find(k);
      return it == vars.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
  };
  CniEnv e;
  auto err = ParseCniEnv(env({}), &e);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->code, kInvalidEnvironment);
  EXPECT_EQ(err->msg, "CNI_COMMAND: required");
  err = ParseCniEnv(env({{"CNI_COMMAND", "ATTACH"}}), &e);
  EXPECT_EQ(err->msg, "CNI_COMMAND: \"ATTACH\" is not one of ADD, DEL, CHECK, VERSION, STATUS, GC");
  err = ParseCniEnv(env({{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c1"}}), &e);
  EXPECT_EQ(err->msg, "required for ADD but not set: CNI_NETNS, CNI_IFNAME");
  // DEL may come after the namespace is gone.
  EXPECT_FALSE(ParseCniEnv(env({{"CNI_COMMAND", "DEL"}, {"CNI_CONTAINERID", "c1"}, {"CNI_IFNAME", "eth0"}}), &e));
  EXPECT_EQ(e.command, Command::kDel);
  EXPECT_EQ(e.netns, "");
  EXPECT_FALSE(ParseCniEnv(env({{"CNI_COMMAND", "STATUS"}}), &e));

  std::map<std::string, std::string> add = {{"CNI_COMMAND", "ADD"}, {"CNI_CONTAINERID", "c1"},
                                            {"CNI_NETNS", "/var/run/netns/p"}, {"CNI_IFNAME", "eth0"},
                                            {"CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-0;"}};
  ASSERT_FALSE(ParseCniEnv(env(add), &e));
  EXPECT_EQ(e.args.at("K8S_POD_NAMESPACE"), "shop");
  EXPECT_EQ(e.args.at("K8S_POD_NAME"), "web-0");
  add["CNI_ARGS"] = "K8S_POD_NAME=web;junk";
  err = ParseCniEnv(env(add), &e);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->msg, "CNI_ARGS: \"junk\" is not KEY=VALUE");
}

json PrevResult04() {
  return json::parse(R"({"cniVersion": "0.4.0",
    "interfaces": [{"name": "cni0", "mac": "aa:bb:cc:dd:ee:ff"}, {"name": "eth0", "sandbox": "/var/run/netns/p"}],
    "ips": [{"version": "4", "interface": 1, "address": "10.22.0.5/24", "gateway": "10.22.0.1"},
            {"version": "6", "interface": 1, "address": "fd00:22::5/64"}],
    "routes": [{"dst": "0.0.0.0/0"}], "dns": {}})");
}

TEST(ResultConversion, DropsOrAddsTheIpVersionFieldBetweenZeroXAndOneX) {
  json out;
  ASSERT_FALSE(ConvertResult(PrevResult04(), "0.4.0", "1.0.0", "prevResult", &out));
  EXPECT_EQ(out["cniVersion"], "1.0.0");
  EXPECT_FALSE(out["ips"][0].contains("version"));
  EXPECT_EQ(out["ips"][1]["address"], "fd00:22::5/64");
  EXPECT_EQ(out["interfaces"], PrevResult04()["interfaces"]);

  json back;
  ASSERT_FALSE(ConvertResult(out, "1.0.0", "0.3.1", "prevResult", &back));
  EXPECT_EQ(back["ips"][0]["version"], "4");
  EXPECT_EQ(back["ips"][1]["version"], "6");
  json same = PrevResult04();
  same["cniVersion"] = "0.3.1";
  EXPECT_EQ(back, same) << "0.4.0 -> 1.0.0 -> 0.3.1 loses nothing";
}

TEST(ResultConversion, NamesTheBrokenField) {
  json out;
  auto bad = [&](json r, const std::string& version = "1.0.0") {
    auto e = ConvertResult(r, version, "1.0.0", "prevResult", &out);
    return e ? e->msg : std::string("accepted");
  };
  EXPECT_EQ(bad("string"), "prevResult: must be an object (a CNI result)");
  EXPECT_EQ(bad({{"ips", {{{"address", "10.0.0.300/24"}}}}}),
            "prevResult.ips[0].address: \"10.0.0.300/24\" is not an address in CIDR form");
  EXPECT_EQ(bad({{"ips", {{{"address", "10.0.0.3"}}}}}),
            "prevResult.ips[0].address: \"10.0.0.3\" is not an address in CIDR form");
  EXPECT_EQ(bad({{"ips", {{{"gateway", "10.0.0.1"}}}}}), "prevResult.ips[0].address: required string");
  EXPECT_EQ(bad({{"interfaces", {{{"mac", "x"}}}}}), "prevResult.interfaces[0].name: required string");
  EXPECT_EQ(bad({{"routes", "x"}}), "prevResult.routes: must be an array");
  EXPECT_EQ(bad(json::object(), "0.2.0"), "prevResult.cniVersion: 0.2.0 is not supported");
}

TEST(Versions, OrderNumerically) {
  EXPECT_TRUE(VersionLess("0.3.1", "0.4.0"));
  EXPECT_TRUE(VersionLess("0.4.0", "1.0.0"));
  EXPECT_TRUE(VersionLess("1.0.0", "1.1.0"));
  EXPECT_FALSE(VersionLess("1.1.0", "1.1.0"));
  EXPECT_TRUE(VersionLess("0.9.0", "0.10.0"));
}

json Pod(json annotations) {
  return {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", {{"name", "web"}, {"annotations", annotations}}}};
}

TEST(PodCapture, OnlyPodsWithTheSidecarAreCaptured) {
  FieldErrors errors;
  PodCapture p = DecidePodCapture(Pod(json::object()), errors);
  EXPECT_FALSE(p.capture);
  EXPECT_EQ(p.reason, "no sidecar (no sidecar.istio.io/status annotation)");
  p = DecidePodCapture({{"metadata", {{"name", "x"}}}}, errors);
  EXPECT_FALSE(p.capture);
  p = DecidePodCapture(Pod({{"sidecar.istio.io/status", "{}"}, {"sidecar.istio.io/interceptionMode", "NONE"}}), errors);
  EXPECT_FALSE(p.capture);
  EXPECT_EQ(p.reason, "interception mode NONE");
  EXPECT_TRUE(errors.empty());
}

TEST(PodCapture, TheAnnotationsTheInjectorWritesBecomeTheCaptureConfig) {
  FieldErrors errors;
  PodCapture p = DecidePodCapture(Pod({{"sidecar.istio.io/status", "{}"},
                                       {"sidecar.istio.io/interceptionMode", "TPROXY"},
                                       {"traffic.sidecar.istio.io/includeOutboundIPRanges", "*"},
                                       {"traffic.sidecar.istio.io/excludeOutboundIPRanges", "10.96.0.1/32"},
                                       {"traffic.sidecar.istio.io/includeInboundPorts", "*"},
                                       {"traffic.sidecar.istio.io/excludeInboundPorts", "15090,15021,15020,9901"},
                                       {"traffic.sidecar.istio.io/excludeOutboundPorts", "8081"},
                                       {"traffic.sidecar.istio.io/excludeInterfaces", ""}}),
                                  errors);
  ASSERT_TRUE(errors.empty()) << errors.ToString();
  ASSERT_TRUE(p.capture);
  EXPECT_EQ(p.config.mode, InterceptionMode::kTproxy);
  EXPECT_TRUE(p.config.include_outbound_ranges.all);
  ASSERT_EQ(p.config.exclude_outbound_ranges.ranges.size(), 1u);
  EXPECT_EQ(p.config.exclude_inbound_ports.ports, (std::vector<uint16_t>{15090, 15021, 15020, 9901}));
  EXPECT_EQ(p.config.exclude_outbound_ports.ports, (std::vector<uint16_t>{8081}));
  EXPECT_EQ(p.config.proxy_uid, 1337u);

  // Absent annotations take Istio's defaults: everything captured in both directions.
  p = DecidePodCapture(Pod({{"sidecar.istio.io/status", "{}"}}), errors);
  ASSERT_TRUE(p.capture);
  EXPECT_EQ(p.config.mode, InterceptionMode::kRedirect);
  EXPECT_TRUE(p.config.include_inbound_ports.all);
  EXPECT_TRUE(p.config.include_outbound_ranges.all);
}

TEST(PodCapture, ABadAnnotationIsAnErrorNamingIt) {
  FieldErrors errors;
  DecidePodCapture(Pod({{"sidecar.istio.io/status", "{}"},
                        {"traffic.sidecar.istio.io/excludeOutboundPorts", "80,http"},
                        {"sidecar.istio.io/interceptionMode", "IPVS"}}),
                   errors);
  std::string all = errors.ToString();
  EXPECT_NE(all.find("metadata.annotations[\"sidecar.istio.io/interceptionMode\"]: \"IPVS\" is not one of REDIRECT, "
                     "TPROXY, NONE"),
            std::string::npos)
      << all;
  EXPECT_NE(all.find("metadata.annotations[\"traffic.sidecar.istio.io/excludeOutboundPorts\"]: "), std::string::npos)
      << all;
  errors = FieldErrors();
  DecidePodCapture(Pod({{"sidecar.istio.io/status", 7}}), errors);
  EXPECT_NE(errors.ToString().find("metadata.annotations"), std::string::npos) << errors.ToString();
}

}  // namespace
}  // namespace tern::cni
