#include "proxy/http1_codec.h"

#include <array>
#include <charconv>
#include <cstring>
#include <span>

#include "core/base/ascii.h"
#include "proxy/header_limits.h"

namespace tern::proxy {

namespace {

// RFC 9110 5.6.2: tchar.
constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!kTokenChars[static_cast<unsigned char>(c)]) return false;
  }
  return true;
}

// A field value's characters: HTAB, SP, VCHAR, obs-text.
bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 ? u != '\t' : u == 0x7f) return false;
  }
  return true;
}

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Cuts the next line (without its CRLF) off `rest`; false when no CRLF ends it.
bool NextLine(std::string_view& rest, std::string_view& line) {
  size_t end = rest.find("\r\n");
  if (end == std::string_view::npos) return false;
  line = rest.substr(0, end);
  rest.remove_prefix(end + 2);
  return true;
}

bool ParseVersion(std::string_view v, unsigned& version) {
  if (v == "HTTP/1.1") version = 11;
  else if (v == "HTTP/1.0") version = 10;
  else return false;
  return true;
}

// Calls f(token) for each element of a comma-separated list (empty elements skipped).
template <class F>
void ForEachToken(std::string_view list, F f) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view token = TrimOws(list.substr(0, comma));
    if (!token.empty()) f(token);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

}  // namespace

namespace {

// The fields a parse classifies as it goes (by length first: most names match none).
// Host's value: uri-host [":" port] (RFC 9112 3.2, RFC 3986 3.2.2): unreserved characters,
// percent-encodings, sub-delims, ':' and the brackets of an IP literal. Anything else (a space,
// '/', '@', a second host after a space: "ok evil") is refused, never forwarded for a backend
// to read its own way; nghttp2 holds HTTP/2's :authority to the same set.
bool IsAuthority(std::string_view v) {
  for (char c : v) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    const bool ok = alnum || std::string_view("-._~%!$&'()*+,;=:[]").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

enum class Known : uint8_t { kOther, kHost, kConnection, kHopByHop, kContentLength, kTransferEncoding };

// `n` equals `lower` (lowercase letters and '-', as long as `n`) but for case: a letter ORed with
// 0x20 is its lowercase; '-' is compared exactly.
bool NameIs(std::string_view n, std::string_view lower) {
  for (size_t i = 0; i < lower.size(); ++i) {
    char c = n[i];
    if (lower[i] == '-' ? c != '-' : static_cast<char>(c | 0x20) != lower[i]) return false;
  }
  return true;
}

Known Classify(std::string_view n) {
  switch (n.size()) {  // then the first letter: most names fail there
    case 4: return NameIs(n, "host") ? Known::kHost : Known::kOther;
    case 10:
      if ((n[0] | 0x20) == 'c') return NameIs(n, "connection") ? Known::kConnection : Known::kOther;
      return NameIs(n, "keep-alive") ? Known::kHopByHop : Known::kOther;
    case 14: return (n[0] | 0x20) == 'c' && NameIs(n, "content-length") ? Known::kContentLength : Known::kOther;
    case 16: return (n[0] | 0x20) == 'p' && NameIs(n, "proxy-connection") ? Known::kHopByHop : Known::kOther;
    case 17: return (n[0] | 0x20) == 't' && NameIs(n, "transfer-encoding") ? Known::kTransferEncoding : Known::kOther;
    default: return Known::kOther;
  }
}

// A field value's characters (HTAB, SP, VCHAR, obs-text): everything but CTLs and DEL.
constexpr std::array<bool, 256> kValueChars = [] {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 256; ++c) t[c] = c != 0x7f;
  t['\t'] = true;
  return t;
}();

// The first byte at or after `p` that is no field value character (its CR, mostly): eight
// bytes at a time while none is below 0x20 or DEL, then byte by byte.
const unsigned char* SkipValueChars(const unsigned char* p, const unsigned char* end) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHighs = 0x8080808080808080ull;
  while (end - p >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    // A byte below 0x20 (on bytes under 0x80: those at or above are obs-text, valid), or 0x7f.
    uint64_t below = (w - kOnes * 0x20) & ~w & kHighs;
    uint64_t x = w ^ (kOnes * 0x7f);
    uint64_t del = (x - kOnes) & ~x & kHighs;
    if (below | del) break;
    p += 8;
  }
  while (p < end && kValueChars[*p]) ++p;
  return p;
}

// The transfer codings of all Transfer-Encoding fields, in order.
struct Codings {
  int chunked = 0, listed = 0;
  bool last_chunked = false;
};
Codings ListCodings(const std::vector<Http1Field>& fields) {
  Codings c;
  for (const auto& f : fields) {
    if (!AsciiIEquals(f.name, "transfer-encoding")) continue;
    ForEachToken(f.value, [&](std::string_view t) {
      c.last_chunked = AsciiIEquals(t, "chunked");
      c.chunked += c.last_chunked;
      ++c.listed;
    });
  }
  return c;
}

bool ParseLength(std::string_view v, uint64_t& out) {
  if (v.empty() || v.size() > 18) return false;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && end == v.data() + v.size();
}

}  // namespace

// One pass over the field lines: each name a token ending at its colon, each value without
// CTLs, each line ended by CRLF, the section by an empty line and nothing after it.
const char* Http1Head::ParseFields(std::string_view rest, Scan& scan) {
  fields.clear();
  if (fields.capacity() == 0) fields.reserve(16);  // one allocation for a typical head, not five
  hop_by_hop_ = false;
  const auto* p = reinterpret_cast<const unsigned char*>(rest.data());
  const auto* end = p + rest.size();
  for (;;) {
    const auto* name = p;
    while (p < end && kTokenChars[*p]) ++p;
    if (p == end) return "the header section does not end with an empty line";
    if (p == name) {
      if (*p == '\r' && p + 1 < end && p[1] == '\n') return p + 2 == end ? nullptr : "bytes after the header section";
      if (*p == ' ' || *p == '\t') return "obs-fold (a folded header line)";
      return "an invalid header field name";
    }
    if (*p != ':') return *p == '\r' ? "a header line without a colon" : "an invalid header field name";  // SP before ':' too
    std::string_view field_name(reinterpret_cast<const char*>(name), static_cast<size_t>(p - name));
    ++p;
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    const auto* value = p;
    p = SkipValueChars(p, end);
    if (p + 1 >= end || *p != '\r' || p[1] != '\n') {
      return p + 1 >= end ? "the header section does not end with an empty line" : "an invalid character in a header field value";
    }
    const auto* value_end = p;
    while (value_end > value && (value_end[-1] == ' ' || value_end[-1] == '\t')) --value_end;
    p += 2;
    if (fields.size() == kMaxHeaderFields) return kTooManyFields;
    std::string_view field_value(reinterpret_cast<const char*>(value), static_cast<size_t>(value_end - value));
    switch (Classify(field_name)) {
      case Known::kOther: break;
      case Known::kHost:
        ++scan.hosts;
        if (!IsAuthority(field_value)) return "an invalid Host field";
        break;
      case Known::kConnection:
        hop_by_hop_ = true;
        ForEachToken(field_value, [&](std::string_view t) {
          scan.close = scan.close || AsciiIEquals(t, "close");
          scan.keep_alive = scan.keep_alive || AsciiIEquals(t, "keep-alive");
        });
        break;
      case Known::kHopByHop: hop_by_hop_ = true; break;
      case Known::kContentLength:
        ++scan.lengths;
        scan.length = static_cast<int>(fields.size());
        break;
      case Known::kTransferEncoding: ++scan.codings; break;
    }
    fields.push_back({field_name, field_value});
  }
}

const char* Http1Head::ParseRequest(std::string_view raw) {
  is_request = true;
  status = 0;
  owned_used_ = 0;
  raw_.assign(raw);
  std::string_view rest = raw_;
  while (rest.starts_with("\r\n")) rest.remove_prefix(2);  // empty lines before the request line (RFC 9112 2.2)
  std::string_view line;
  if (!NextLine(rest, line)) return "no request line";
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return "a malformed request line";
  method = line.substr(0, sp1);
  target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!IsToken(method)) return "an invalid method";
  if (target.empty()) return "an empty request target";
  for (char c : target) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) return "an invalid request target";
    // A fragment is the client's alone, never sent (RFC 9110 4.2.5); Envoy refuses it too.
    if (c == '#') return "a request target with a fragment";
  }
  if (!ParseVersion(line.substr(sp2 + 1), version)) return "an unsupported HTTP version";
  Scan scan;
  bool keep_alive_forced_off = false;
  if (const char* problem = ParseFields(rest, scan)) return problem;
  if (scan.hosts > 1) return "two Host fields";
  if (scan.lengths > 1) return "two Content-Length fields";
  if (scan.lengths && scan.codings) return "Content-Length with Transfer-Encoding";
  framing = BodyFraming::kNone;
  content_length = 0;
  if (scan.codings) {
    // chunked must be the last coding, and applied once (RFC 9112 6.1, 6.3).
    Codings c = ListCodings(fields);
    if (c.chunked != 1 || !c.last_chunked) return "a Transfer-Encoding whose last coding is not chunked";
    // Like Envoy, no coding but chunked: a backend that knew none of them would frame the body
    // another way than we do.
    if (c.listed != 1) return kUnsupportedCoding;
    framing = BodyFraming::kChunked;
    if (version == 10) keep_alive_forced_off = true;
  } else if (scan.lengths) {
    if (!ParseLength(fields[static_cast<size_t>(scan.length)].value, content_length)) return "an invalid Content-Length";
    framing = content_length > 0 ? BodyFraming::kLength : BodyFraming::kNone;
  }
  // Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 6.1): the connection ends after it.
  keep_alive = !keep_alive_forced_off && (version == 11 ? !scan.close : scan.keep_alive);
  bool absolute = false;
  if (target[0] != '/') {
    if (const char* problem = ToOriginForm(absolute)) return problem;
  }
  // HTTP/1.1 requires Host (RFC 9112 3.2); an absolute target brings its own. A transfer-coded
  // HTTP/1.0 request goes upstream as HTTP/1.1, so it needs one too.
  if ((version == 11 || framing == BodyFraming::kChunked) && scan.hosts == 0 && !absolute) return "no Host field";
  return nullptr;
}

const char* Http1Head::ToOriginForm(bool& absolute) {
  // Authority form is CONNECT's alone, the asterisk OPTIONS' alone (RFC 9112 3.2.3, 3.2.4).
  if (method == "CONNECT") return nullptr;
  if (target == "*") return method == "OPTIONS" ? nullptr : "an asterisk target for a method other than OPTIONS";
  // Absolute form, from a client that takes the proxy for a forward proxy: the target's
  // authority replaces Host, and the upstream gets origin form (RFC 9112 3.2.2, 7.2).
  size_t sep = target.find("://");
  std::string_view scheme = target.substr(0, sep);
  if (sep == std::string_view::npos || !(AsciiIEquals(scheme, "http") || AsciiIEquals(scheme, "https"))) {
    return "an invalid request target";
  }
  std::string_view rest = target.substr(sep + 3);
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority[0] == ':') return "an absolute request target without a host";  // RFC 9110 4.2.1
  if (authority.find('@') != std::string_view::npos) return "a request target with userinfo";  // RFC 9110 4.2.4
  if (!IsAuthority(authority)) return "an invalid request target";
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (!Find("host") && fields.size() >= kMaxHeaderFields) return kTooManyFields;  // Host would be one more
  Set("host", authority);
  if (path.empty()) target = "/";
  else if (path[0] == '?') target = Own(std::string("/").append(path));
  else target = path;
  absolute = true;
  return nullptr;
}

const char* Http1Head::ParseResponse(std::string_view raw, bool head_request) {
  is_request = false;
  method = target = {};
  owned_used_ = 0;
  raw_.assign(raw);
  std::string_view rest = raw_;
  std::string_view line;
  if (!NextLine(rest, line)) return "no status line";
  // HTTP-version SP 3DIGIT SP [reason-phrase]; a missing SP after the code is tolerated.
  if (line.size() < 12 || line[8] != ' ' || !ParseVersion(line.substr(0, 8), version)) return "a malformed status line";
  status = 0;
  for (char c : line.substr(9, 3)) {
    if (c < '0' || c > '9') return "a malformed status code";
    status = status * 10 + static_cast<unsigned>(c - '0');
  }
  if (status < 100 || (line.size() > 12 && line[12] != ' ')) return "a malformed status line";
  if (!IsFieldValue(line.substr(12))) return "an invalid reason phrase";
  Scan scan;
  if (const char* problem = ParseFields(rest, scan)) return problem;
  if (scan.lengths > 1) return "two Content-Length fields";
  if (scan.lengths && scan.codings) return "Content-Length with Transfer-Encoding";
  content_length = 0;
  keep_alive = version == 11 ? !scan.close : scan.keep_alive;
  if (scan.lengths && !ParseLength(fields[static_cast<size_t>(scan.length)].value, content_length)) {
    return "an invalid Content-Length";
  }
  if (head_request || status < 200 || status == 204 || status == 304) {
    framing = BodyFraming::kNone;
  } else if (scan.codings) {
    Codings c = ListCodings(fields);
    if (c.chunked > 1) return "chunked applied twice";
    framing = c.last_chunked ? BodyFraming::kChunked : BodyFraming::kUntilClose;
  } else if (scan.lengths) {
    framing = content_length > 0 ? BodyFraming::kLength : BodyFraming::kNone;
  } else {
    framing = BodyFraming::kUntilClose;
  }
  if (framing == BodyFraming::kUntilClose) keep_alive = false;
  return nullptr;
}

void Http1Head::StartResponse(unsigned code) {
  is_request = false;
  method = target = {};
  status = code;
  version = 11;
  fields.clear();
  owned_used_ = 0;
  raw_.clear();
  hop_by_hop_ = false;
  framing = BodyFraming::kNone;
  content_length = 0;
  keep_alive = true;
}

const Http1Field* Http1Head::Find(std::string_view name) const {
  for (const auto& f : fields) {
    if (AsciiIEquals(f.name, name)) return &f;
  }
  return nullptr;
}

std::string_view Http1Head::Own(std::string_view s) {
  if (owned_used_ == owned_.size()) owned_.push_back(std::make_unique<std::string>());
  std::string& slot = *owned_[owned_used_++];
  slot.assign(s);
  return slot;
}

void Http1Head::Erase(std::string_view name) {
  std::erase_if(fields, [&](const Http1Field& f) { return AsciiIEquals(f.name, name); });
}

void Http1Head::Set(std::string_view name, std::string_view value) {
  Erase(name);
  Add(name, value);
}

void Http1Head::Add(std::string_view name, std::string_view value) {
  Known k = Classify(name);
  hop_by_hop_ = hop_by_hop_ || k == Known::kConnection || k == Known::kHopByHop;
  fields.push_back({Own(name), Own(value)});
}

void Http1Head::SetTarget(std::string_view t) { target = Own(t); }

void Http1Head::DropHopByHop() {
  if (!hop_by_hop_) return;
  hop_by_hop_ = false;
  // The fields the Connection field names are hop-by-hop too (RFC 9110 7.6.1).
  std::array<std::string_view, 8> named_buf;  // more than 8 named fields: the rest stay
  size_t count = 0;
  for (const auto& f : fields) {
    if (Classify(f.name) != Known::kConnection) continue;
    ForEachToken(f.value, [&](std::string_view t) {
      if (count < named_buf.size() && !AsciiIEquals(t, "keep-alive") && !AsciiIEquals(t, "close")) named_buf[count++] = t;
    });
  }
  std::span<const std::string_view> named(named_buf.data(), count);
  std::erase_if(fields, [&](const Http1Field& f) {
    Known k = Classify(f.name);
    if (k == Known::kConnection || k == Known::kHopByHop) return true;
    for (std::string_view n : named) {
      // Framing stays with the message (re-framed by Frame); Host is never hop-by-hop.
      if (AsciiIEquals(f.name, n) && !AsciiIEquals(n, "content-length") && !AsciiIEquals(n, "transfer-encoding") &&
          !AsciiIEquals(n, "host")) {
        return true;
      }
    }
    return false;
  });
}

void Http1Head::Frame(BodyFraming out, uint64_t length) {
  if (out == BodyFraming::kNone) return;
  // Codings other than chunked (gzip, ...) stay with the message; chunked is ours to add.
  std::string codings;
  for (const auto& f : fields) {
    if (!AsciiIEquals(f.name, "transfer-encoding")) continue;
    ForEachToken(f.value, [&](std::string_view t) {
      if (AsciiIEquals(t, "chunked")) return;
      if (!codings.empty()) codings += ", ";
      codings += t;
    });
  }
  Erase("content-length");
  Erase("transfer-encoding");
  if (out == BodyFraming::kChunked) {
    fields.push_back({"Transfer-Encoding", codings.empty() ? std::string_view("chunked") : Own(codings + ", chunked")});
  } else if (out == BodyFraming::kUntilClose) {
    if (!codings.empty()) fields.push_back({"Transfer-Encoding", Own(codings)});
  } else {  // kLength: for bodies with no other coding (replays of chunked requests, local answers)
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, length);
    fields.push_back({"Content-Length", Own(std::string_view(digits, static_cast<size_t>(end - digits)))});
  }
}

void Http1Head::ReleaseStorage() {
  method = target = {};
  std::vector<Http1Field>().swap(fields);
  std::string().swap(raw_);
  std::vector<std::unique_ptr<std::string>>().swap(owned_);
  owned_used_ = 0;
}

void Http1Head::AppendTo(std::string& out, bool keep, unsigned out_version) const {
  // Sized once, then copied into: one allocation at most, no capacity check per piece.
  char code[4] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                  static_cast<char>('0' + status % 10), ' '};
  std::string_view reason = is_request ? std::string_view() : ReasonPhrase(status);
  // A request keeps its version, but a chunked body is HTTP/1.1's alone (RFC 9112 6.1).
  if (is_request) out_version = framing == BodyFraming::kChunked ? 11 : version;
  std::string_view version_text = out_version == 10 ? "HTTP/1.0" : "HTTP/1.1";
  // HTTP/1.1 persists unless told; HTTP/1.0 only when told.
  std::string_view persistence = !keep ? "Connection: close\r\n" : out_version == 10 ? "Connection: keep-alive\r\n" : "";
  size_t size = is_request ? method.size() + target.size() + version_text.size() + 4 : version_text.size() + 5 + reason.size() + 2;
  for (const auto& f : fields) size += f.name.size() + f.value.size() + 4;
  size += persistence.size() + 2;
  size_t at = out.size();
  out.resize(at + size);
  char* p = out.data() + at;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  if (is_request) {
    put(method), put(" "), put(target), put(" "), put(version_text);
  } else {
    put(version_text), put(" "), put({code, 4}), put(reason);
  }
  put("\r\n");
  for (const auto& f : fields) put(f.name), put(": "), put(f.value), put("\r\n");
  put(persistence);
  put("\r\n");
}

std::string_view ReasonPhrase(unsigned status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
  }
}

void BodyDecoder::Start(BodyFraming framing, uint64_t length) {
  framing_ = framing;
  remaining_ = length;
  digits_ = line_ = 0;
  switch (framing) {
    case BodyFraming::kNone: state_ = State::kDone; break;
    case BodyFraming::kLength: state_ = length ? State::kData : State::kDone; break;
    case BodyFraming::kChunked: state_ = State::kSize; break;
    case BodyFraming::kUntilClose: state_ = State::kData; break;
  }
}

namespace {

constexpr size_t kMaxChunkLine = 4096;     // a chunk-size line with its extensions
constexpr size_t kMaxTrailerBytes = 65536;  // all trailer lines together

}  // namespace

const char* BodyDecoder::Next(std::string_view in, size_t& used, std::string_view& data) {
  used = 0;
  data = {};
  if (state_ == State::kData) {  // the body's bytes, in bulk
    size_t n = in.size();
    if (framing_ != BodyFraming::kUntilClose && remaining_ < n) n = static_cast<size_t>(remaining_);
    data = in.substr(0, n);
    used = n;
    if (framing_ != BodyFraming::kUntilClose) {
      remaining_ -= n;
      if (remaining_ == 0) state_ = framing_ == BodyFraming::kChunked ? State::kDataCr : State::kDone;
    }
    return nullptr;
  }
  // The chunked framing around the data, a byte at a time, up to the next data or the end.
  const char* problem = nullptr;
  while (!problem && used < in.size() && state_ != State::kDone && state_ != State::kData) {
    char c = in[used++];
    switch (state_) {
      case State::kSize: {
        int v = AsciiHexValue(c);
        if (v >= 0) {
          if (++digits_ > 15) return "a chunk size too large";
          remaining_ = remaining_ * 16 + static_cast<uint64_t>(v);
        } else if (digits_ == 0) {
          return "an invalid chunk size";
        } else if (c == '\r') {
          state_ = State::kSizeLf;
        } else if (c == ';' || c == ' ' || c == '\t') {
          state_ = State::kExtension;
        } else {
          return "an invalid chunk size";
        }
        break;
      }
      case State::kExtension:
        if (c == '\r') state_ = State::kSizeLf;
        else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return "an invalid chunk extension";
        else if (++line_ > kMaxChunkLine) return "a chunk extension too long";
        break;
      case State::kSizeLf:
        if (c != '\n') return "a chunk size line without CRLF";
        digits_ = line_ = 0;
        state_ = remaining_ == 0 ? State::kTrailer : State::kData;
        break;
      // The one byte each of these states allows, and the state after it.
      case State::kDataCr: problem = Expect(c, '\r', State::kDataLf, "chunk data longer than its size"); break;
      case State::kDataLf: problem = Expect(c, '\n', State::kSize, "chunk data without CRLF"); break;
      case State::kTrailerLf: problem = Expect(c, '\n', State::kTrailer, "a bare CR in the trailers"); break;
      case State::kEndLf: problem = Expect(c, '\n', State::kDone, "a bare CR in the trailers"); break;
      case State::kTrailer:  // a trailer line's first byte, or the CR of the empty line that ends them
      case State::kTrailerLine:
        if (c == '\n') return "a bare LF in the trailers";
        if (c == '\r') state_ = state_ == State::kTrailer ? State::kEndLf : State::kTrailerLf;
        else state_ = State::kTrailerLine;
        if (++line_ > kMaxTrailerBytes) return "trailers too large";
        break;
      case State::kData:
      case State::kDone: break;
    }
  }
  return problem;
}

const char* BodyDecoder::Expect(char c, char want, State next, const char* problem) {
  if (c != want) return problem;
  state_ = next;
  return nullptr;
}

size_t ChunkHeader(uint64_t n, char (&buf)[20]) {
  auto [end, ec] = std::to_chars(buf, buf + 16, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<size_t>(end - buf);
}

}  // namespace tern::proxy
