// The byte queue between a stream's two sides stays bounded by what it holds, however the
// reader and the writer interleave; header operations on an HTTP/2 header list.
#include "proxy/h2_fields.h"

#include <gtest/gtest.h>

namespace tern::proxy {
namespace {

TEST(ByteQueue, AReaderSlightlySlowerThanTheWriterKeepsItBounded) {
  ByteQueue q;
  std::string chunk(16384, 'x');
  std::vector<uint8_t> out(16000);
  size_t written = 0, read = 0;
  for (int i = 0; i < 2000; ++i) {  // 32 MB through, never drained whole
    q.Append(chunk);
    written += chunk.size();
    read += q.Take(out.data(), out.size());
    ASSERT_LE(q.footprint(), 2 * q.size() + chunk.size()) << "after " << written << " bytes";
  }
  EXPECT_EQ(written - read, q.size());
  EXPECT_EQ(q.Clear(), written - read);
  EXPECT_EQ(q.size(), 0u);
}

TEST(ByteQueue, BytesComeOutInOrder) {
  ByteQueue q;
  q.Append(std::string_view("hello "));
  uint8_t buf[4];
  ASSERT_EQ(q.Take(buf, 4), 4u);
  q.Append(std::string_view("world"));
  std::string rest(7, '\0');
  ASSERT_EQ(q.Take(reinterpret_cast<uint8_t*>(rest.data()), 7), 7u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), 4) + rest, "hello world");
}

TEST(Headers, IstioOperationsCompareNamesLowercase) {
  Headers h{{":status", "200"}, {"x-a", "1"}, {"x-b", "2"}, {"x-b", "3"}};
  istio::HeaderOperations ops;
  ops.remove = {"X-A"};
  ops.set = {{"X-B", "set"}};
  ops.add = {{"X-C", "added"}};
  ApplyHeaderOps(h, ops);
  EXPECT_EQ(h, (Headers{{":status", "200"}, {"x-b", "set"}, {"x-c", "added"}}));
  EXPECT_TRUE(IsConnectionSpecific("transfer-encoding"));
  EXPECT_FALSE(IsConnectionSpecific("te"));
}

}  // namespace
}  // namespace tern::proxy
