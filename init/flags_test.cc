#include "init/flags.h"
#include "init/validation.h"

#include <gtest/gtest.h>

#include <map>

namespace tern::init {
namespace {

Result<InitOptions> Parse(std::vector<std::string> args, std::map<std::string, std::string> env = {}) {
  return ParseInitFlags(args, [env](const std::string& name) -> std::optional<std::string> {
    auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  });
}

// Exactly the arguments the webhook injects (see webhook/testdata/golden/tproxy.golden).
TEST(InitFlags, AcceptsWhatTheWebhookInjects) {
  auto o = Parse({"-p", "15001", "-z", "15006", "-u", "1337", "-g", "1337", "-m", "TPROXY", "-i",
                  "10.0.0.0/8,fd00::/8", "-x", "10.96.0.10/32,fd00:10::/64", "-b", "8080,9090", "-d",
                  "15090,15021,9091,15020", "-q", "5432", "-o", "25", "-c", "net1,net2"});
  ASSERT_TRUE(o.ok()) << o.status().message();
  const auto& c = o->config;
  EXPECT_EQ(c.mode, InterceptionMode::kTproxy);
  EXPECT_EQ(c.include_outbound_ranges.ranges.size(), 2u);
  EXPECT_EQ(c.exclude_outbound_ranges.ranges.size(), 2u);
  EXPECT_EQ(c.include_inbound_ports.ports, (std::vector<uint16_t>{8080, 9090}));
  EXPECT_EQ(c.exclude_inbound_ports.ports, (std::vector<uint16_t>{15090, 15021, 9091, 15020}));
  EXPECT_EQ(c.include_outbound_ports.ports, (std::vector<uint16_t>{5432}));
  EXPECT_EQ(c.exclude_outbound_ports.ports, (std::vector<uint16_t>{25}));
  EXPECT_EQ(c.exclude_interfaces, (std::vector<std::string>{"net1", "net2"}));
  auto defaults = Parse({"-x", "", "-b", "*", "-i", "*"});
  ASSERT_TRUE(defaults.ok()) << defaults.status().message();
  EXPECT_TRUE(defaults->config.include_inbound_ports.all);
}

TEST(InitFlags, LongFormsEnvAndPrecedence) {
  auto o = Parse({"--envoy-port=16001", "--proxy-uid", "2000", "--dry-run", "--ipv6=false"},
                 {{"PROXY_UID", "3000"}, {"PROXY_GID", "4000"}, {"ISTIO_INBOUND_TPROXY_MARK", "77"}});
  ASSERT_TRUE(o.ok()) << o.status().message();
  EXPECT_EQ(o->config.outbound_port, 16001);
  EXPECT_EQ(o->config.proxy_uid, 2000u) << "the flag beats the environment";
  EXPECT_EQ(o->config.proxy_gid, 4000u);
  EXPECT_EQ(o->config.tproxy_mark, 77u);
  EXPECT_TRUE(o->dry_run);
  EXPECT_FALSE(o->config.ipv6);
}

TEST(InitFlags, EveryErrorNamesItsFlag) {
  auto o = Parse({"-p", "70000", "-m", "MAGIC", "-d", "http", "--bogus", "-u"});
  ASSERT_FALSE(o.ok());
  EXPECT_EQ(o.status().message(),
            "--bogus: unknown flag; -u/--proxy-uid: needs a value; -m/--istio-inbound-interception-mode: \"MAGIC\" is "
            "not one of REDIRECT, TPROXY, NONE; -d/--istio-local-exclude-ports: \"http\" is not a port number; "
            "-p/--envoy-port: \"70000\" is not a number from 1 to 65535");
}

TEST(ValidationTarget, PicksACapturedAddressAndPort) {
  auto all = Parse({});
  auto t = PickValidationTarget(all->config);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ip, "192.0.2.1");
  EXPECT_EQ(t->port, 15002);
  auto ranges = Parse({"-i", "10.96.0.0/12,fd00::/8", "-o", "15002,15003"});
  t = PickValidationTarget(ranges->config);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->ip, "10.96.0.1");
  EXPECT_EQ(t->port, 15004) << "excluded ports are skipped";
  auto ports_only = Parse({"-i", "", "-q", "5432"});
  t = PickValidationTarget(ports_only->config);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->port, 5432);
  EXPECT_FALSE(PickValidationTarget(Parse({"-i", ""})->config).ok()) << "capture off: nothing to validate";
  auto all_excluded = PickValidationTarget(Parse({"-i", "10.0.0.0/8", "-x", "10.0.0.0/16"})->config);
  ASSERT_FALSE(all_excluded.ok());
  EXPECT_NE(all_excluded.status().message().find("excluded"), std::string::npos);
}

}  // namespace
}  // namespace tern::init
