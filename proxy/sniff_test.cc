// Protocol sniffing: each protocol recognised from its first bytes, partial input asks for more
// (bounded), and anything else is TCP.
#include "proxy/sniff.h"

#include <gtest/gtest.h>

#include <string>

namespace tern::proxy {
namespace {

TEST(Sniff, RecognisesEachProtocol) {
  EXPECT_EQ(SniffProtocol(std::string("\x16\x03\x01\x02\x00\x01", 6)), Sniffed::kTls);
  EXPECT_EQ(SniffProtocol("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Sniffed::kHttp2);
  EXPECT_EQ(SniffProtocol("GET /index.html HTTP/1.1\r\nHost: a\r\n"), Sniffed::kHttp1);
  EXPECT_EQ(SniffProtocol("POST /api HTTP/1.0\n"), Sniffed::kHttp1);
  EXPECT_EQ(SniffProtocol("SSH-2.0-OpenSSH_9.2\r\n"), Sniffed::kTcp);
  EXPECT_EQ(SniffProtocol(std::string("\x00\x00\x00\x08\x04\xd2\x16\x2f", 8)), Sniffed::kTcp) << "Postgres SSLRequest";
  EXPECT_EQ(SniffProtocol("GET / SPDY/3\r\n"), Sniffed::kTcp);
  EXPECT_EQ(SniffProtocol("get / HTTP/1.1\r\n"), Sniffed::kHttp1) << "methods are case-sensitive tokens, any token";
}

TEST(Sniff, PartialInputAsksForMoreWithinABound) {
  EXPECT_EQ(SniffProtocol(""), Sniffed::kNeedMore);
  EXPECT_EQ(SniffProtocol("\x16"), Sniffed::kNeedMore);
  EXPECT_EQ(SniffProtocol("PRI * HT"), Sniffed::kNeedMore);
  EXPECT_EQ(SniffProtocol("GE"), Sniffed::kNeedMore);
  EXPECT_EQ(SniffProtocol("GET /long/path"), Sniffed::kNeedMore);
  EXPECT_EQ(SniffProtocol("GET /" + std::string(9000, 'a')), Sniffed::kTcp) << "a request line never ends: give up";
  EXPECT_EQ(SniffProtocol(std::string(40, 'A')), Sniffed::kTcp) << "no method is 40 characters long";
}

}  // namespace
}  // namespace tern::proxy
