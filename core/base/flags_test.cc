#include "core/base/flags.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

struct Parsed {
  Status status;
  std::string listen = "default", level;
  long port = 7;
  bool verbose = false, help = false;
  bool listen_given = false;
};

Parsed ParseArgs(std::vector<const char*> args) {
  Parsed p;
  FlagSet flags("prog");
  flags.String("listen", &p.listen, "where");
  flags.String("log-level", &p.level, "how much");
  flags.Int("port", &p.port, 0, 65535, "which port");
  flags.Bool("verbose", &p.verbose, "say more");
  args.insert(args.begin(), "prog");
  p.status = flags.Parse(static_cast<int>(args.size()), args.data(), &p.help);
  p.listen_given = flags.Given("listen");
  return p;
}

TEST(FlagSetTest, TakesBothFormsAndRefusesUnknownFlagsByName) {
  struct Case {
    std::vector<const char*> args;
    std::string error;  // "" when it parses
  } cases[] = {
      {{"--listen", "a:1", "--port=80"}, ""},
      {{"--listen=a:1", "--port", "80", "--verbose"}, ""},
      {{"--bogus"}, "unknown flag --bogus"},
      {{"--bogus=1"}, "unknown flag --bogus"},
      {{"--port", "http"}, "--port: \"http\" is not a number from 0 to 65535"},
      {{"--port=70000"}, "--port: \"70000\" is not a number from 0 to 65535"},
      {{"--port="}, "--port: \"\" is not a number from 0 to 65535"},
      {{"--listen"}, "--listen needs a value"},
      {{"--verbose=maybe"}, "--verbose: \"maybe\" is not true or false"},
      {{"stray"}, "unexpected argument \"stray\""},
  };
  for (const auto& c : cases) {
    Parsed p = ParseArgs(c.args);
    EXPECT_EQ(p.status.message(), c.error) << c.args[0];
    if (c.error.empty()) {
      EXPECT_EQ(p.listen, "a:1");
      EXPECT_EQ(p.port, 80);
      EXPECT_TRUE(p.listen_given);
    }
  }
  Parsed v = ParseArgs({"--verbose", "--port", "9"});
  EXPECT_TRUE(v.verbose);
  EXPECT_EQ(v.port, 9);
  EXPECT_FALSE(v.listen_given);
  EXPECT_EQ(v.listen, "default");
  Parsed off = ParseArgs({"--verbose=false"});
  EXPECT_TRUE(off.status.ok());
  EXPECT_FALSE(off.verbose);
  EXPECT_TRUE(ParseArgs({"--port=1", "--help", "--bogus"}).help);
}

}  // namespace
}  // namespace tern
