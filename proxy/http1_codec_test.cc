// The proxy's HTTP/1.1 codec on its own: what a header section parses to, what it refuses and
// why, how a body's framing decodes however its bytes are split, and what goes back out.
#include "proxy/http1_codec.h"

#include <gtest/gtest.h>

#include <string>

namespace tern::proxy {
namespace {

TEST(Http1Head, ARequestParsesToViewsOfItsOwnCopy) {
  Http1Head h;
  std::string raw = "\r\nPOST /api/v1?x=1 HTTP/1.1\r\nHost: product-service:8080\r\nContent-Length: 5\r\nX-Empty:\r\n"
                    "X-Pad: \t spaced out \t\r\nConnection: keep-alive\r\n\r\n";
  ASSERT_EQ(h.ParseRequest(raw), nullptr);
  raw.assign(raw.size(), '#');  // the head keeps its own copy
  EXPECT_EQ(h.method, "POST");
  EXPECT_EQ(h.target, "/api/v1?x=1");
  EXPECT_EQ(h.version, 11u);
  ASSERT_EQ(h.fields.size(), 5u);
  EXPECT_EQ(h.Get("HOST"), "product-service:8080");
  EXPECT_EQ(h.Get("x-empty"), "");
  EXPECT_NE(h.Find("x-empty"), nullptr);
  EXPECT_EQ(h.Get("x-pad"), "spaced out");
  EXPECT_EQ(h.framing, BodyFraming::kLength);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_TRUE(h.keep_alive);
}

TEST(Http1Head, PersistenceFollowsTheVersionAndTheConnectionField) {
  Http1Head h;
  ASSERT_EQ(h.ParseRequest("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n"), nullptr);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(h.ParseRequest("GET / HTTP/1.0\r\n\r\n"), nullptr);
  EXPECT_FALSE(h.keep_alive);
  EXPECT_EQ(h.version, 10u);
  ASSERT_EQ(h.ParseRequest("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n"), nullptr);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(h.ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), nullptr);
  EXPECT_TRUE(h.keep_alive);
  EXPECT_EQ(h.framing, BodyFraming::kNone);
}

TEST(Http1Head, TargetsAreMadeOriginFormAndHttp11NeedsHost) {
  Http1Head h;
  EXPECT_STREQ(h.ParseRequest("GET / HTTP/1.1\r\nX: 1\r\n\r\n"), "no Host field");
  EXPECT_EQ(h.ParseRequest("GET / HTTP/1.0\r\n\r\n"), nullptr) << "HTTP/1.0 has no Host requirement";
  EXPECT_STREQ(h.ParseRequest("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), "no Host field")
      << "but goes upstream as HTTP/1.1 when chunked";
  // Absolute form: the target's authority replaces Host; the target becomes origin form.
  struct Case {
    const char* target;
    const char* host;
    const char* origin;
  };
  for (const Case& c : {Case{"http://b.svc:8080/p?q=1", "b.svc:8080", "/p?q=1"}, Case{"HTTPS://b", "b", "/"},
                        Case{"http://b?q", "b", "/?q"}, Case{"http://[::1]:80/x", "[::1]:80", "/x"}}) {
    std::string raw = std::string("GET ") + c.target + " HTTP/1.1\r\nHost: elsewhere\r\nX: 1\r\n\r\n";
    ASSERT_EQ(h.ParseRequest(raw), nullptr) << c.target;
    EXPECT_EQ(h.target, c.origin) << c.target;
    EXPECT_EQ(h.Get("host"), c.host) << c.target;
    EXPECT_EQ(h.Get("x"), "1");
    std::string out;
    h.AppendTo(out, true);
    EXPECT_EQ(out.find("elsewhere"), std::string::npos) << out;
    EXPECT_EQ(out.rfind(std::string("GET ") + c.origin + " HTTP/1.1\r\n", 0), 0u) << out;
  }
  ASSERT_EQ(h.ParseRequest("GET http://b/ HTTP/1.1\r\n\r\n"), nullptr) << "an absolute target brings its host";
  EXPECT_EQ(h.Get("host"), "b");
  EXPECT_EQ(h.ParseRequest("OPTIONS * HTTP/1.1\r\nHost: b\r\n\r\n"), nullptr);
  EXPECT_EQ(h.target, "*");
  for (auto [raw, problem] : std::vector<std::pair<std::string, std::string>>{
           {"GET * HTTP/1.1\r\nHost: b\r\n\r\n", "an asterisk target for a method other than OPTIONS"},
           {"GET b/c HTTP/1.1\r\nHost: b\r\n\r\n", "an invalid request target"},
           {"GET ftp://b/ HTTP/1.1\r\nHost: b\r\n\r\n", "an invalid request target"},
           {"GET http:///p HTTP/1.1\r\nHost: b\r\n\r\n", "an absolute request target without a host"},
           {"GET http://u:p@b/ HTTP/1.1\r\nHost: b\r\n\r\n", "a request target with userinfo"},
           {"GET http://:80/ HTTP/1.1\r\nHost: b\r\n\r\n", "an absolute request target without a host"},
           {"GET http://b#f HTTP/1.1\r\nHost: b\r\n\r\n", "a request target with a fragment"},
           {"GET http://b/p#f HTTP/1.1\r\nHost: b\r\n\r\n", "a request target with a fragment"},
           {"GET /p#f HTTP/1.1\r\nHost: b\r\n\r\n", "a request target with a fragment"}}) {
    const char* got = h.ParseRequest(raw);
    EXPECT_STREQ(got ? got : "accepted", problem.c_str()) << raw;
  }
}

TEST(Http1Head, SmugglingShapesAreRefusedWithWhatIsWrong) {
  const std::pair<std::string, std::string> cases[] = {
      {"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", "Content-Length with Transfer-Encoding"},
      {"POST / HTTP/1.1\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\n", "two Content-Length fields"},
      {"POST / HTTP/1.1\r\nContent-Length: 4, 4\r\n\r\n", "an invalid Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n", "an invalid Content-Length"},
      {"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", "an invalid Content-Length"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", "a Transfer-Encoding whose last coding is not chunked"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
       "a Transfer-Encoding whose last coding is not chunked"},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n", "a Transfer-Encoding whose last coding is not chunked"},
      {"GET / HTTP/1.1\r\nContent-Length : 4\r\n\r\n", "an invalid header field name"},
      {"GET / HTTP/1.1\r\nX-Folded: a\r\n b\r\n\r\n", "obs-fold (a folded header line)"},
      {"GET / HTTP/1.1\r\nX-Split: a\rb\r\n\r\n", "an invalid character in a header field value"},
      {"GET / HTTP/1.1\r\nX-Ctl: a\x01b\r\n\r\n", "an invalid character in a header field value"},
      {"GET / HTTP/1.1\nHost: a\r\n\r\n", "an unsupported HTTP version"},
      {"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", "an invalid character in a header field value"},
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "two Host fields"},
      {"GET / HTTP/2.0\r\n\r\n", "an unsupported HTTP version"},
      {"GET  / HTTP/1.1\r\n\r\n", "an empty request target"},
      {"G(T / HTTP/1.1\r\n\r\n", "an invalid method"},
      {"GET /\x7f HTTP/1.1\r\n\r\n", "an invalid request target"},
      {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", "a header line without a colon"},
      {"GET / HTTP/1.1\r\nX: 1\r\n\r\nGET", "bytes after the header section"},
  };
  for (const auto& [raw, why] : cases) {
    Http1Head h;
    const char* problem = h.ParseRequest(raw);
    ASSERT_NE(problem, nullptr) << raw;
    EXPECT_EQ(std::string(problem), why) << raw;
  }
}

TEST(Http1Head, OnlyChunkedIsAcceptedAsARequestsCoding) {
  Http1Head h;
  EXPECT_EQ(h.ParseRequest("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), kUnsupportedCoding);
  ASSERT_EQ(h.ParseRequest("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked,\r\nX: 1\r\n\r\n"), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kChunked);
  h.Frame(BodyFraming::kChunked, 0);
  std::string out;
  h.AppendTo(out, true);
  EXPECT_EQ(out, "POST / HTTP/1.1\r\nHost: a\r\nX: 1\r\nTransfer-Encoding: chunked\r\n\r\n") << "written back plain";
  ASSERT_EQ(h.ParseRequest("POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"), nullptr);
  EXPECT_FALSE(h.keep_alive) << "a transfer-coded HTTP/1.0 request ends its connection (RFC 9112 6.1)";
  h.DropHopByHop();
  out.clear();
  h.AppendTo(out, true);
  EXPECT_EQ(out, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n") << "chunks go upstream as HTTP/1.1 only";
}

TEST(Http1Head, AnAnswersOtherCodingsStayWhenItIsReframed) {
  Http1Head h;
  EXPECT_STREQ(h.ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", false),
               "chunked applied twice");
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false), nullptr);
  h.Frame(BodyFraming::kChunked, 0);
  EXPECT_EQ(h.Get("transfer-encoding"), "gzip, chunked");
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false), nullptr);
  h.Frame(BodyFraming::kUntilClose, 0);
  EXPECT_EQ(h.Get("transfer-encoding"), "gzip") << "de-chunked for an HTTP/1.0 client, still gzipped";
}

TEST(Http1Head, EveryByteOfAValueIsCheckedWhereverItSits) {
  // Values are scanned eight bytes at a time: each byte value at each offset of a long value.
  Http1Head h;
  for (int c = 0; c < 256; ++c) {
    const bool valid = c == '\t' || (c >= 0x20 && c != 0x7f);
    for (size_t at = 0; at < 19; ++at) {
      std::string value(20, 'v');
      value[at] = static_cast<char>(c);
      if (c == '\r') value[at + 1] = 'x';  // a CR not followed by LF
      std::string raw = "GET / HTTP/1.1\r\nHost: a\r\nX: " + value + "\r\n\r\n";
      const char* problem = h.ParseRequest(raw);
      if (valid) {
        ASSERT_EQ(problem, nullptr) << "byte " << c << " at " << at;
      } else {
        ASSERT_NE(problem, nullptr) << "byte " << c << " at " << at;
      }
    }
  }
}

TEST(Http1Head, FramingNamesAreKnownInAnyCaseAndOnlyExactly) {
  Http1Head h;
  ASSERT_EQ(h.ParseRequest("POST / HTTP/1.1\r\nHOST: a\r\nCONTENT-LENGTH: 5\r\nCONNECTION: CLOSE\r\n\r\n"), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kLength);
  EXPECT_FALSE(h.keep_alive);
  ASSERT_EQ(h.ParseRequest("POST / HTTP/1.1\r\nhost: a\r\ntransfer-ENCODING: Chunked\r\n\r\n"), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kChunked);
  // Look-alikes are other fields: '_' for '-' (0x5f | 0x20 is no '-'), a longer name.
  ASSERT_EQ(h.ParseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\nX-Content-Length: 5\r\n\r\n"), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kNone);
  ASSERT_EQ(h.ParseRequest("GET / HTTP/1.1\r\nHost: a\r\nHOST_: b\r\n\r\n"), nullptr) << "one Host";
}

TEST(Http1Head, AHundredFieldsParseAndOneMoreIsTooMany) {
  std::string raw = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 1; i < 100; ++i) raw += "x-" + std::to_string(i) + ": 1\r\n";
  Http1Head h;
  EXPECT_EQ(h.ParseRequest(raw + "\r\n"), nullptr);
  EXPECT_EQ(h.ParseRequest(raw + "x-100: 1\r\n\r\n"), kTooManyFields);
  // An absolute target's Host counts: 100 other fields and it would be 101.
  std::string absolute = "GET http://b/ HTTP/1.1\r\n";
  for (int i = 0; i < 100; ++i) absolute += "x-" + std::to_string(i) + ": 1\r\n";
  EXPECT_EQ(h.ParseRequest(absolute + "\r\n"), kTooManyFields);
}

TEST(Http1Head, AnAnswersFramingFollowsRfc9112) {
  Http1Head h;
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false), nullptr);
  EXPECT_EQ(h.status, 200u);
  EXPECT_EQ(h.framing, BodyFraming::kLength);
  EXPECT_TRUE(h.keep_alive);
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", true), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kNone) << "an answer to HEAD has no body";
  for (const char* no_body : {"HTTP/1.1 204 No Content\r\n\r\n", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                              "HTTP/1.1 100 Continue\r\n\r\n"}) {
    ASSERT_EQ(h.ParseResponse(no_body, false), nullptr) << no_body;
    EXPECT_EQ(h.framing, BodyFraming::kNone) << no_body;
    EXPECT_TRUE(h.keep_alive) << no_body;
  }
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kChunked);
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false), nullptr);
  EXPECT_EQ(h.framing, BodyFraming::kUntilClose);
  EXPECT_FALSE(h.keep_alive) << "a body ended by the close ends the connection";
  ASSERT_EQ(h.ParseResponse("HTTP/1.0 200\r\n\r\n", false), nullptr) << "no reason phrase";
  EXPECT_EQ(h.framing, BodyFraming::kUntilClose);
  EXPECT_EQ(h.version, 10u);
  EXPECT_STREQ(h.ParseResponse("HTTP/1.1 20x OK\r\n\r\n", false), "a malformed status code");
  EXPECT_STREQ(h.ParseResponse("ICY 200 OK\r\n\r\n", false), "a malformed status line");
  EXPECT_STREQ(h.ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false),
               "two Content-Length fields");
  EXPECT_STREQ(h.ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false),
               "Content-Length with Transfer-Encoding");
}

TEST(Http1Head, EditsAndTheHopByHopFieldsAreWrittenBackOut) {
  Http1Head h;
  ASSERT_EQ(h.ParseRequest("GET /old HTTP/1.0\r\nHost: a\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: 5\r\n"
                           "X-Keep: 2\r\nX-Dup: 1\r\nX-Dup: 2\r\n\r\n"),
            nullptr);
  h.SetTarget("/new");
  h.Set("x-dup", "3");
  h.Add("x-added", "4");
  h.Erase("X-KEEP");
  h.DropHopByHop();
  std::string out;
  h.AppendTo(out, true);
  EXPECT_EQ(out, "GET /new HTTP/1.0\r\nHost: a\r\nx-dup: 3\r\nx-added: 4\r\nConnection: keep-alive\r\n\r\n")
      << "a request keeps its version";
  out.clear();
  h.AppendTo(out, false);
  EXPECT_EQ(out, "GET /new HTTP/1.0\r\nHost: a\r\nx-dup: 3\r\nx-added: 4\r\nConnection: close\r\n\r\n");
  Http1Head again;
  EXPECT_EQ(again.ParseRequest(out), nullptr);
  EXPECT_FALSE(again.keep_alive);
}

TEST(Http1Head, AnAnswerIsReframedForItsClient) {
  Http1Head h;
  ASSERT_EQ(h.ParseResponse("HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 2\r\n\r\n", false), nullptr);
  h.Frame(BodyFraming::kChunked, 0);
  std::string out;
  h.AppendTo(out, true);
  EXPECT_EQ(out, "HTTP/1.1 200 OK\r\nServer: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  out.clear();
  h.Frame(BodyFraming::kLength, 12345);
  h.AppendTo(out, true, 10);
  EXPECT_EQ(out, "HTTP/1.0 200 OK\r\nServer: x\r\nContent-Length: 12345\r\nConnection: keep-alive\r\n\r\n");
  h.StartResponse(599);
  out.clear();
  h.AppendTo(out, true);
  EXPECT_EQ(out, "HTTP/1.1 599 Unknown\r\n\r\n");
}

// Feeds `in` to a decoder in pieces of `step` bytes (a piece grows when the decoder wants more
// than it holds, as a read buffer would); the body bytes, or "!" and the problem.
std::string Decode(BodyFraming framing, uint64_t length, std::string_view in, size_t step, size_t* left = nullptr) {
  BodyDecoder d;
  d.Start(framing, length);
  std::string body;
  size_t at = 0;
  for (int guard = 0; !d.done() && at < in.size() && guard < 100000; ++guard) {
    size_t used;
    std::string_view data;
    if (const char* problem = d.Next(in.substr(at, step), used, data)) return std::string("!") + problem;
    if (used == 0) break;
    body.append(data);
    at += used;
  }
  if (left) *left = in.size() - at;
  return d.done() ? body : "?" + body;  // "?": not done
}

TEST(BodyDecoder, AChunkedBodyDecodesTheSameHoweverItIsSplit) {
  const std::string wire = "5\r\nhello\r\n1;ext=\"a b\"\r\n \r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\nGET /next";
  for (size_t step = 1; step <= wire.size(); ++step) {
    size_t left = 0;
    EXPECT_EQ(Decode(BodyFraming::kChunked, 0, wire, step, &left), "hello 0123456789") << "pieces of " << step;
    EXPECT_EQ(left, 9u) << "the next request stays unread";
  }
}

TEST(BodyDecoder, BadChunkFramingIsNamed) {
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "zz\r\n", 100), "!an invalid chunk size");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "-1\r\n", 100), "!an invalid chunk size");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "1000000000000000\r\n", 100), "!a chunk size too large");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "3\r\nabcd\r\n", 100), "!chunk data longer than its size");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "3\nabc\r\n", 100), "!an invalid chunk size");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "3;x\rabc\r\n", 100), "!a chunk size line without CRLF");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "3;\x01\r\n", 100), "!an invalid chunk extension");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "0\r\nX: 1\n\r\n", 100), "!a bare LF in the trailers");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "1;" + std::string(5000, 'e') + "\r\n", 100), "!a chunk extension too long");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "0\r\n" + std::string(70000, 't'), 4096), "!trailers too large");
  EXPECT_EQ(Decode(BodyFraming::kChunked, 0, "5\r\nhel", 100), "?hel") << "truncated: not done";
}

TEST(BodyDecoder, LengthAndCloseFramedBodies) {
  size_t left = 0;
  EXPECT_EQ(Decode(BodyFraming::kLength, 5, "helloGET", 3, &left), "hello");
  EXPECT_EQ(left, 3u);
  EXPECT_EQ(Decode(BodyFraming::kLength, 5, "hel", 3), "?hel");
  EXPECT_EQ(Decode(BodyFraming::kNone, 0, "GET", 3, &left), "");
  EXPECT_EQ(left, 3u);
  BodyDecoder d;
  d.Start(BodyFraming::kUntilClose, 0);
  size_t used;
  std::string_view data;
  ASSERT_EQ(d.Next("all of it", used, data), nullptr);
  EXPECT_EQ(data, "all of it");
  EXPECT_FALSE(d.done());
  d.EndOfInput();
  EXPECT_TRUE(d.done()) << "the close ends it";
  d.Start(BodyFraming::kLength, 4);
  d.EndOfInput();
  EXPECT_FALSE(d.done()) << "a close before its length is a truncated body";
}

TEST(ChunkHeader, IsTheSizeInHex) {
  char buf[20];
  EXPECT_EQ(std::string_view(buf, ChunkHeader(0x3fa9, buf)), "3fa9\r\n");
  EXPECT_EQ(std::string_view(buf, ChunkHeader(1, buf)), "1\r\n");
}

}  // namespace
}  // namespace tern::proxy

namespace tern::proxy {
namespace {

TEST(Http1Head, HostMustBeAUriHostWithAnOptionalPort) {
  Http1Head h;
  for (const char* good : {"a", "product-service:8080", "10.96.0.20:80", "[fd00::1]:80", "x.y_z~1", ""}) {
    EXPECT_EQ(h.ParseRequest(std::string("GET / HTTP/1.1\r\nHost: ") + good + "\r\n\r\n"), nullptr) << good;
  }
  for (const char* bad : {"ok evil", "a/b", "a@b", "a?b", "a#b", "a\"b", "a<b"}) {
    const char* problem = h.ParseRequest(std::string("GET / HTTP/1.1\r\nHost: ") + bad + "\r\n\r\n");
    ASSERT_NE(problem, nullptr) << bad;
    EXPECT_STREQ(problem, "an invalid Host field") << bad;
  }
  EXPECT_STREQ(h.ParseRequest("GET http://a\"b/ HTTP/1.1\r\nHost: a\r\n\r\n"), "an invalid request target");
}

}  // namespace
}  // namespace tern::proxy
