#include "core/kube/chunked_decoder.h"

#include <gtest/gtest.h>

namespace tern::kube {
namespace {

struct Case {
  const char* name;
  std::string in;
  std::string body;   // decoded, when no error
  bool done;          // the last chunk and its trailers were read
  std::string error;  // "" when none
};

// Every row is fed whole, then byte by byte (a watch's reads split it anywhere): the same result.
TEST(ChunkedDecoder, DecodesInAnyCutAndNamesWhatIsMalformed) {
  const Case cases[] = {
      {"two chunks", "4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n", "Wikipedia", true, ""},
      {"extension and trailer", "3;x=y\r\nabc\r\n0\r\nExpires: never\r\n\r\n", "abc", true, ""},
      {"upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", true, ""},
      {"not yet ended", "3\r\nabc\r\n", "abc", false, ""},
      {"bytes after the end are not read", "0\r\n\r\nHTTP/1.1", "", true, ""},
      {"not hex", "zz\r\nabc\r\n", "", false, "chunked body: malformed chunk size \"zz\""},
      {"junk after the size", "3x\r\nabc\r\n", "", false, "chunked body: malformed chunk size \"3x\""},
      {"data longer than its size", "2\r\nabc\r\n", "ab", false, "chunked body: chunk data longer than its size"},
      {"bare LF", "3\nabc\n", "", false, "chunked body: a framing line not ended by CRLF"},
      {"size out of range", "1000000000000000000\r\n", "", false, "chunked body: chunk size out of range"},
      {"endless size line", std::string(2000, '1'), "", false, "chunked body: a framing line over 1024 bytes"},
  };
  for (const Case& c : cases) {
    for (bool bytewise : {false, true}) {
      SCOPED_TRACE(std::string(c.name) + (bytewise ? ", byte by byte" : ", whole"));
      ChunkedDecoder d;
      std::string out;
      Status st = Status::Ok();
      if (bytewise) {
        for (size_t i = 0; i < c.in.size() && st.ok(); ++i) st = d.Feed(std::string_view(c.in).substr(i, 1), out);
      } else {
        st = d.Feed(c.in, out);
      }
      EXPECT_EQ(st.ok() ? "" : st.message(), c.error);
      if (c.error.empty()) {
        EXPECT_EQ(out, c.body);
        EXPECT_EQ(d.done(), c.done);
      }
    }
  }
}

}  // namespace
}  // namespace tern::kube
