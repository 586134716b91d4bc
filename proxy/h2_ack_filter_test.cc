#include "proxy/h2_ack_filter.h"

#include <gtest/gtest.h>

#include <string>

namespace tern::proxy {
namespace {

std::string Frame(uint8_t type, uint8_t flags, const std::string& payload) {
  std::string f = {static_cast<char>(payload.size() >> 16), static_cast<char>(payload.size() >> 8),
                   static_cast<char>(payload.size()), static_cast<char>(type), static_cast<char>(flags), 0, 0, 0, 1};
  return f + payload;
}

// Passes `in` through a filter in pieces of `step` bytes.
std::string Filtered(const std::string& in, size_t step, int nth = 2) {
  SettingsAckFilter filter(nth, /*preface=*/true);
  std::string out;
  for (size_t at = 0; at < in.size(); at += step) {
    size_t n = std::min(step, in.size() - at);
    EXPECT_TRUE(filter.Pass(reinterpret_cast<const uint8_t*>(in.data() + at), n, [&](const uint8_t* d, size_t s) {
      out.append(reinterpret_cast<const char*>(d), s);
      return true;
    }));
  }
  return out;
}

TEST(SettingsAckFilter, DropsTheNthAckWhereverTheReadsSplitTheStream) {
  const std::string preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  const std::string settings = Frame(0x4, 0, std::string(6, '\x01'));
  const std::string ack = Frame(0x4, 0x1, "");
  // A frame whose payload looks like an ACK header must not be taken for one.
  const std::string data = Frame(0x0, 0, ack + "payload");
  const std::string headers = Frame(0x1, 0x4, "\x82\x86\x84");
  const std::string in = preface + settings + ack + data + ack + headers + ack;
  const std::string want = preface + settings + ack + data + headers + ack;
  for (size_t step : {1, 2, 5, 9, 10, 17, 64, 4096}) EXPECT_EQ(Filtered(in, step), want) << "reads of " << step;
}

TEST(SettingsAckFilter, APeerThatNeverAcknowledgesPassesEverything) {
  const std::string in = std::string("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") + Frame(0x1, 0x4, "\x82") + Frame(0x4, 0x1, "");
  EXPECT_EQ(Filtered(in, 3, /*nth=*/2), in);
}

TEST(SettingsAckFilter, ASinkFailureStopsThePass) {
  SettingsAckFilter filter(2, false);
  const std::string in = Frame(0x0, 0, "abc") + Frame(0x0, 0, "def");
  int calls = 0;
  EXPECT_FALSE(filter.Pass(reinterpret_cast<const uint8_t*>(in.data()), in.size(), [&](const uint8_t*, size_t) {
    ++calls;
    return false;
  }));
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace tern::proxy
