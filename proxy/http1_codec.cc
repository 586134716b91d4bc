#include "proxy/http1_codec.h"

#include <array>
#include <charconv>
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

bool HasToken(const std::vector<Http1Field>& fields, std::string_view name, std::string_view token) {
  bool found = false;
  for (const auto& f : fields) {
    if (AsciiIEquals(f.name, name)) ForEachToken(f.value, [&](std::string_view t) { found = found || AsciiIEquals(t, token); });
  }
  return found;
}

}  // namespace

const char* Http1Head::ParseFields(std::string_view& rest) {
  fields.clear();
  std::string_view line;
  for (;;) {
    if (!NextLine(rest, line)) return "the header section does not end with an empty line";
    if (line.empty()) return nullptr;
    if (line.front() == ' ' || line.front() == '\t') return "obs-fold (a folded header line)";
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return "a header line without a colon";
    std::string_view name = line.substr(0, colon);
    if (!IsToken(name)) return "an invalid header field name";  // whitespace before the colon too
    std::string_view value = TrimOws(line.substr(colon + 1));
    if (!IsFieldValue(value)) return "an invalid character in a header field value";
    if (fields.size() == kMaxHeaderFields) return kTooManyFields;
    fields.push_back({name, value});
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
  }
  if (!ParseVersion(line.substr(sp2 + 1), version)) return "an unsupported HTTP version";
  if (const char* problem = ParseFields(rest)) return problem;
  if (!rest.empty()) return "bytes after the header section";

  const Http1Field *length = nullptr, *coding = nullptr;
  int hosts = 0;
  for (const auto& f : fields) {
    if (AsciiIEquals(f.name, "content-length")) {
      if (length) return "two Content-Length fields";
      length = &f;
    } else if (AsciiIEquals(f.name, "transfer-encoding")) {
      coding = &f;  // the last one: its last coding is the body's last
    } else if (AsciiIEquals(f.name, "host")) {
      ++hosts;
    }
  }
  if (hosts > 1) return "two Host fields";
  if (length && coding) return "Content-Length with Transfer-Encoding";
  framing = BodyFraming::kNone;
  content_length = 0;
  if (coding) {
    // chunked must be the last coding, and applied once (RFC 9112 6.1, 6.3).
    int chunked = 0;
    bool last_chunked = false;
    for (const auto& f : fields) {
      if (!AsciiIEquals(f.name, "transfer-encoding")) continue;
      ForEachToken(f.value, [&](std::string_view t) {
        last_chunked = AsciiIEquals(t, "chunked");
        chunked += last_chunked;
      });
    }
    if (chunked != 1 || !last_chunked) return "a Transfer-Encoding whose last coding is not chunked";
    framing = BodyFraming::kChunked;
  } else if (length) {
    std::string_view v = length->value;
    if (v.empty() || v.size() > 18) return "an invalid Content-Length";
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), content_length);
    if (ec != std::errc() || end != v.data() + v.size()) return "an invalid Content-Length";
    framing = content_length > 0 ? BodyFraming::kLength : BodyFraming::kNone;
  }
  keep_alive = version == 11 ? !HasToken(fields, "connection", "close") : HasToken(fields, "connection", "keep-alive");
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
  if (const char* problem = ParseFields(rest)) return problem;
  if (!rest.empty()) return "bytes after the header section";

  const Http1Field *length = nullptr, *coding = nullptr;
  for (const auto& f : fields) {
    if (AsciiIEquals(f.name, "content-length")) {
      if (length) return "two Content-Length fields";
      length = &f;
    } else if (AsciiIEquals(f.name, "transfer-encoding")) {
      coding = &f;
    }
  }
  if (length && coding) return "Content-Length with Transfer-Encoding";
  content_length = 0;
  keep_alive = version == 11 ? !HasToken(fields, "connection", "close") : HasToken(fields, "connection", "keep-alive");
  if (length) {
    std::string_view v = length->value;
    if (v.empty() || v.size() > 18) return "an invalid Content-Length";
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), content_length);
    if (ec != std::errc() || end != v.data() + v.size()) return "an invalid Content-Length";
  }
  if (head_request || status < 200 || status == 204 || status == 304) {
    framing = BodyFraming::kNone;
  } else if (coding) {
    bool last_chunked = false;
    ForEachToken(coding->value, [&](std::string_view t) { last_chunked = AsciiIEquals(t, "chunked"); });
    framing = last_chunked ? BodyFraming::kChunked : BodyFraming::kUntilClose;
  } else if (length) {
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
  if (owned_used_ == owned_.size()) owned_.emplace_back();
  std::string& slot = owned_[owned_used_++];
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

void Http1Head::Add(std::string_view name, std::string_view value) { fields.push_back({Own(name), Own(value)}); }

void Http1Head::SetTarget(std::string_view t) { target = Own(t); }

void Http1Head::DropHopByHop() {
  // The fields the Connection field names are hop-by-hop too (RFC 9110 7.6.1).
  std::array<std::string_view, 8> named_buf;  // more than 8 named fields: the rest stay
  size_t count = 0;
  for (const auto& f : fields) {
    if (!AsciiIEquals(f.name, "connection")) continue;
    ForEachToken(f.value, [&](std::string_view t) {
      if (count < named_buf.size() && !AsciiIEquals(t, "keep-alive") && !AsciiIEquals(t, "close")) named_buf[count++] = t;
    });
  }
  std::span<const std::string_view> named(named_buf.data(), count);
  std::erase_if(fields, [&](const Http1Field& f) {
    if (AsciiIEquals(f.name, "connection") || AsciiIEquals(f.name, "keep-alive") || AsciiIEquals(f.name, "proxy-connection")) {
      return true;
    }
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
  Erase("content-length");
  Erase("transfer-encoding");
  if (out == BodyFraming::kChunked) fields.push_back({"Transfer-Encoding", "chunked"});
  if (out == BodyFraming::kLength) {
    char digits[24];
    auto [end, ec] = std::to_chars(digits, digits + sizeof digits, length);
    fields.push_back({"Content-Length", Own(std::string_view(digits, static_cast<size_t>(end - digits)))});
  }
}

void Http1Head::AppendTo(std::string& out, bool keep, unsigned out_version) const {
  if (is_request) {
    out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    out_version = 11;
  } else {
    char code[4] = {static_cast<char>('0' + status / 100 % 10), static_cast<char>('0' + status / 10 % 10),
                    static_cast<char>('0' + status % 10), ' '};
    out.append(out_version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ").append(code, 4).append(ReasonPhrase(status)).append("\r\n");
  }
  for (const auto& f : fields) out.append(f.name).append(": ").append(f.value).append("\r\n");
  // HTTP/1.1 persists unless told; HTTP/1.0 only when told.
  if (!keep) out.append("Connection: close\r\n");
  else if (out_version == 10) out.append("Connection: keep-alive\r\n");
  out.append("\r\n");
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

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

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
  while (used < in.size() && state_ != State::kDone && state_ != State::kData) {
    char c = in[used++];
    switch (state_) {
      case State::kSize: {
        int v = HexValue(c);
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
      case State::kDataCr:
        if (c != '\r') return "chunk data longer than its size";
        state_ = State::kDataLf;
        break;
      case State::kDataLf:
        if (c != '\n') return "chunk data without CRLF";
        state_ = State::kSize;
        break;
      case State::kTrailer:
        if (c == '\r') state_ = State::kEndLf;
        else if (c == '\n') return "a bare LF in the trailers";
        else state_ = State::kTrailerLine;
        if (++line_ > kMaxTrailerBytes) return "trailers too large";
        break;
      case State::kTrailerLine:
        if (c == '\r') state_ = State::kTrailerLf;
        else if (c == '\n') return "a bare LF in the trailers";
        if (++line_ > kMaxTrailerBytes) return "trailers too large";
        break;
      case State::kTrailerLf:
        if (c != '\n') return "a bare CR in the trailers";
        state_ = State::kTrailer;
        break;
      case State::kEndLf:
        if (c != '\n') return "a bare CR in the trailers";
        state_ = State::kDone;
        break;
      case State::kData:
      case State::kDone: break;
    }
  }
  return nullptr;
}

size_t ChunkHeader(uint64_t n, char (&buf)[20]) {
  auto [end, ec] = std::to_chars(buf, buf + 16, n, 16);
  *end++ = '\r';
  *end++ = '\n';
  return static_cast<size_t>(end - buf);
}

}  // namespace tern::proxy
