// The byte queue between a stream's two sides stays bounded by what it holds, however the
// reader and the writer interleave; header operations on an HTTP/2 header list.
#include "proxy/h2_fields.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

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

TEST(NameValues, ViewEveryFieldInPlaceOrPastTheInlineRoom) {
  for (size_t count : {0u, 3u, 24u, 25u, 101u}) {
    Headers h;
    for (size_t i = 0; i < count; ++i) h.emplace_back("x-" + std::to_string(i), std::string(i, 'v'));
    NameValues nva(h);
    ASSERT_EQ(nva.size(), count);
    for (size_t i = 0; i < count; ++i) {
      const nghttp2_nv& nv = nva.data()[i];
      EXPECT_EQ(nv.name, reinterpret_cast<const uint8_t*>(h[i].first.data())) << count << " " << i;
      EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(nv.value), nv.valuelen), h[i].second);
      EXPECT_EQ(nv.namelen, h[i].first.size());
    }
  }
}

TEST(AnswerHeaders, InterimBlocksAreDroppedThenResponseThenTrailers) {
  AnswerHeaders a;
  EXPECT_TRUE(a.Add(":status", "100"));
  EXPECT_EQ(a.End(), AnswerHeaders::Block::kInterim);
  EXPECT_FALSE(a.has_response());
  EXPECT_TRUE(a.Add(":status", "200"));
  EXPECT_TRUE(a.Add("content-type", "application/grpc"));
  EXPECT_EQ(a.End(), AnswerHeaders::Block::kResponse);
  EXPECT_TRUE(a.Add("grpc-status", "0"));
  EXPECT_EQ(a.End(), AnswerHeaders::Block::kTrailers);
  EXPECT_EQ(a.response, (Headers{{":status", "200"}, {"content-type", "application/grpc"}}));
  EXPECT_EQ(a.trailers, (Headers{{"grpc-status", "0"}}));
}

TEST(AnswerHeaders, AreBoundedInBytesAndFields) {
  AnswerHeaders bytes;
  EXPECT_TRUE(bytes.Add(":status", "200"));
  EXPECT_TRUE(bytes.Add("x-a", std::string(60000, 'a')));
  EXPECT_FALSE(bytes.Add("x-b", std::string(6000, 'b'))) << "past 64 KiB";
  AnswerHeaders fields;
  bool ok = true;
  for (int i = 0; i < 101 && ok; ++i) ok = fields.Add("x-" + std::to_string(i), "1");
  EXPECT_FALSE(ok) << "past 100 fields";
  // The response's own list may grow once submitted (a route's header operations edit it in
  // place): its trailers are still bounded by what the upstream sent.
  AnswerHeaders edited;
  ASSERT_TRUE(edited.Add(":status", "200"));
  for (int i = 0; i < 95; ++i) ASSERT_TRUE(edited.Add("x-" + std::to_string(i), "1"));
  ASSERT_EQ(edited.End(), AnswerHeaders::Block::kResponse);
  for (int i = 0; i < 5; ++i) edited.response.emplace_back("x-added-" + std::to_string(i), "1");
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(edited.Add("grpc-" + std::to_string(i), "0")) << i;
  EXPECT_FALSE(edited.Add("one-too-many", "0"));
}

TEST(AnswerHeaders, ContentLengthOnlyWhenValid) {
  for (auto [value, want] : std::vector<std::pair<std::string, std::optional<uint64_t>>>{
           {"0", 0}, {"16384", 16384}, {"", std::nullopt}, {"12a", std::nullopt}, {"-1", std::nullopt}, {" 5", std::nullopt}}) {
    AnswerHeaders a;
    ASSERT_TRUE(a.Add(":status", "200"));
    ASSERT_TRUE(a.Add("content-length", value));
    a.End();
    EXPECT_EQ(a.content_length(), want) << "\"" << value << "\"";
  }
  AnswerHeaders none;
  ASSERT_TRUE(none.Add(":status", "200"));
  none.End();
  EXPECT_EQ(none.content_length(), std::nullopt);
}

TEST(Grpc, CallsAreKnownByContentTypeAndHttpStatusesMapAsGrpcSays) {
  EXPECT_TRUE(IsGrpcRequest({{"content-type", "application/grpc"}}));
  EXPECT_TRUE(IsGrpcRequest({{"content-type", "application/grpc+proto"}}));
  EXPECT_TRUE(IsGrpcRequest({{"content-type", "application/grpc;charset=utf-8"}}));
  EXPECT_FALSE(IsGrpcRequest({{"content-type", "application/grpc-web"}}));
  EXPECT_FALSE(IsGrpcRequest({{"content-type", "application/json"}}));
  EXPECT_FALSE(IsGrpcRequest({}));
  EXPECT_EQ(GrpcStatusForHttp(503), 14);
  EXPECT_EQ(GrpcStatusForHttp(504), 14);
  EXPECT_EQ(GrpcStatusForHttp(502), 14);
  EXPECT_EQ(GrpcStatusForHttp(429), 14);
  EXPECT_EQ(GrpcStatusForHttp(404), 12);
  EXPECT_EQ(GrpcStatusForHttp(403), 7);
  EXPECT_EQ(GrpcStatusForHttp(431), 2);
}

}  // namespace
}  // namespace tern::proxy
