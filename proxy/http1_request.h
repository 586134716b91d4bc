// The checks every HTTP/1.1 request passes before it is routed, shared by the session and its
// fuzz target: the raw header bytes (what smuggling and header splitting rely on), the parser's
// limits, and the message framing.
#pragma once

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstddef>
#include <string>
#include <string_view>

#include "proxy/header_limits.h"

namespace tern::proxy {

inline constexpr const char* kTooManyFields = "more than 100 header fields";

// obs-fold (a line starting with SP/HTAB), a bare CR, a bare LF (RFC 9112 2.2, 5.2), more than
// kMaxHeaderFields fields (kTooManyFields: 431); "" when the header section (request line to
// the last CRLF) has none. One linear pass.
std::string RawHeaderProblem(std::string_view header);

// Headers bounded (431 beyond), bodies unbounded: they are streamed, never held whole.
template <class Body>
void LimitRequestParser(boost::beast::http::request_parser<Body>& p) {
  p.header_limit(kMaxHeaderBytes);
  p.body_limit(boost::none);
}

// A length given two ways is refused outright (RFC 9112 6.3); Beast already refuses two
// different Content-Lengths and malformed chunk sizes.
template <class Fields>
const char* FramingProblem(const boost::beast::http::header<true, Fields>& h) {
  namespace http = boost::beast::http;
  if (h.count(http::field::content_length) && h.count(http::field::transfer_encoding)) {
    return "Content-Length with Transfer-Encoding";
  }
  return nullptr;
}

// An upstream's HTTP/1.1 answer failed to parse (it spoke something else: 502, UPE), as opposed
// to the connection closing or resetting before a whole answer (503, UC).
inline bool AnswerIsGarbage(const boost::system::error_code& ec) {
  namespace http = boost::beast::http;
  return ec.category() == boost::system::error_code(http::error::bad_version).category() && ec != http::error::end_of_stream &&
         ec != http::error::partial_message;
}

}  // namespace tern::proxy
