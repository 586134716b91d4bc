#include "proxy/sniff.h"

#include <algorithm>

namespace tern::proxy {

const char* SniffedName(Sniffed s) {
  switch (s) {
    case Sniffed::kNeedMore: return "need-more";
    case Sniffed::kTls: return "tls";
    case Sniffed::kHttp2: return "http2";
    case Sniffed::kHttp1: return "http1";
    case Sniffed::kTcp: return "tcp";
  }
  return "tcp";
}

namespace {

constexpr std::string_view kH2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

bool IsTokenChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// "METHOD SP target SP HTTP/1.x" at the start of `b`: kHttp1, kTcp, or kNeedMore.
Sniffed SniffHttp1(std::string_view b) {
  size_t i = 0;
  while (i < b.size() && i < 32 && IsTokenChar(b[i])) ++i;
  if (i == b.size()) return i < 32 ? Sniffed::kNeedMore : Sniffed::kTcp;
  if (i == 0 || b[i] != ' ') return Sniffed::kTcp;
  // The request target, then " HTTP/1." before the end of the line.
  size_t eol = b.find('\n', i);
  std::string_view line = b.substr(0, eol);
  size_t space = line.rfind(' ');
  if (eol == std::string_view::npos) {
    // No full line yet: keep waiting while it could still be a request line (bounded).
    return b.size() < 8192 ? Sniffed::kNeedMore : Sniffed::kTcp;
  }
  if (space == i) return Sniffed::kTcp;
  std::string_view version = line.substr(space + 1);
  if (!version.empty() && version.back() == '\r') version.remove_suffix(1);
  return version == "HTTP/1.1" || version == "HTTP/1.0" ? Sniffed::kHttp1 : Sniffed::kTcp;
}

}  // namespace

Sniffed SniffProtocol(std::string_view b) {
  if (b.empty()) return Sniffed::kNeedMore;
  // TLS handshake record: type 22, version 3.x.
  if (b[0] == 0x16) {
    if (b.size() < 2) return Sniffed::kNeedMore;
    return b[1] == 0x03 ? Sniffed::kTls : Sniffed::kTcp;
  }
  size_t n = std::min(b.size(), kH2Preface.size());
  if (b.substr(0, n) == kH2Preface.substr(0, n)) {
    if (b.size() < kH2Preface.size()) return Sniffed::kNeedMore;
    return Sniffed::kHttp2;
  }
  return SniffHttp1(b);
}

}  // namespace tern::proxy
