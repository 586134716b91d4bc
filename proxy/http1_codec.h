// The proxy's own HTTP/1.1 message codec, for the hot path: a header section is parsed in one
// pass into views over one copy of its bytes (no allocation per field), edited in place, and
// written back as one string; a body's framing (Content-Length, chunked, until close) is decoded
// as its bytes arrive, so a body is relayed piece by piece and re-framed only where it must be.
// Strict where laxness lets two parties read one message two ways (RFC 9112): every line ends in
// CRLF, no obs-fold, no whitespace before a field's colon, one Content-Length at most and never
// with Transfer-Encoding, chunked last when a request is transfer-coded, one Host.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tern::proxy {

// The parse error for a header section of more than kMaxHeaderFields fields (431, not 400).
inline constexpr char kTooManyFields[] = "more than 100 header fields";  // an array: one address everywhere

// The parse error for a request transfer-coded other than just chunked (501, as Envoy answers).
inline constexpr char kUnsupportedCoding[] = "a transfer coding other than chunked";

// Interim answers (1xx but 101) read and dropped before the final one; more is a broken upstream.
inline constexpr int kMaxInterimAnswers = 8;

struct Http1Field {
  std::string_view name, value;
};

enum class BodyFraming : uint8_t { kNone, kLength, kChunked, kUntilClose };

class Http1Head {
 public:
  Http1Head() = default;
  Http1Head(const Http1Head&) = delete;  // the fields are views into this object's own storage
  Http1Head& operator=(const Http1Head&) = delete;

  // Parse a whole header section (start line to the blank line; its final CRLF CRLF included).
  // Each returns nullptr, or what is wrong (a request: 400; an answer: 502). An answer to a HEAD
  // request (`head_request`) has no body whatever it says. A request's absolute target becomes
  // origin form, its authority the Host field.
  const char* ParseRequest(std::string_view raw);
  const char* ParseResponse(std::string_view raw, bool head_request);
  // An answer made here (from an HTTP/2 stream's header, or the proxy's own): no fields yet.
  void StartResponse(unsigned status);

  // Case-insensitive, over every field of that name.
  const Http1Field* Find(std::string_view name) const;
  std::string_view Get(std::string_view name) const {
    const Http1Field* f = Find(name);
    return f ? f->value : std::string_view();
  }
  void Erase(std::string_view name);
  void Set(std::string_view name, std::string_view value);  // replaces every field of that name
  void Add(std::string_view name, std::string_view value);
  void SetTarget(std::string_view target);
  template <class Pred>
  void EraseIf(Pred pred) {
    std::erase_if(fields, [&](const Http1Field& f) { return pred(f.name); });
  }

  // The head as the next hop gets it: persistence set to `keep_alive` (the Connection field and
  // the hop-by-hop fields it names are the previous hop's; they are replaced), the body framed
  // `out` (kChunked: Transfer-Encoding chunked; kLength: Content-Length `length`; kUntilClose:
  // only its other codings, if any; kNone: the fields as they are). Codings other than chunked
  // stay listed. A request is written with its own version; an answer with the version given.
  void Frame(BodyFraming out, uint64_t length);
  void DropHopByHop();
  void AppendTo(std::string& out, bool keep_alive, unsigned version = 11) const;
  // Gives back every byte of storage the head kept for its next parse (an idle connection's
  // heads hold none); the views it had are gone.
  void ReleaseStorage();

  bool is_request = true;
  std::string_view method, target;  // a request's
  unsigned status = 0;              // an answer's
  unsigned version = 11;            // 10 or 11
  std::vector<Http1Field> fields;
  BodyFraming framing = BodyFraming::kNone;
  uint64_t content_length = 0;
  bool keep_alive = true;  // what the message asks of its connection (its version and Connection field)

 private:
  // What parsing the fields noticed on the way, so no second pass looks for it.
  struct Scan {
    int length = -1;  // the index of Content-Length in `fields`
    int lengths = 0, codings = 0, hosts = 0;
    bool close = false, keep_alive = false;  // Connection tokens
  };
  const char* ParseFields(std::string_view rest, Scan& scan);
  // A request target not in origin form: checked, and an absolute one made origin form.
  const char* ToOriginForm(bool& absolute);
  std::string_view Own(std::string_view s);  // a copy that lives as long as this head (or its next parse)

  std::string raw_;
  // Each string on the heap by itself: growing the vector moves no string, so views stay valid
  // (a deque would do too, but allocates as it is constructed, and heads are made per request).
  std::vector<std::unique_ptr<std::string>> owned_;
  size_t owned_used_ = 0;          // strings of owned_ in use; the rest are kept for their capacity
  bool hop_by_hop_ = true;         // a Connection, Keep-Alive or Proxy-Connection field may be present
};

// Decodes a body's framing from its bytes as they arrive. Trailers of a chunked body are read
// and dropped.
class BodyDecoder {
 public:
  void Start(BodyFraming framing, uint64_t length);
  // Takes what it can of `in`: `used` bytes (0: it needs more input, or is done), `data` the body
  // bytes among them (a view into `in`). Returns nullptr or what is wrong with the framing.
  const char* Next(std::string_view in, size_t& used, std::string_view& data);
  // The connection ended: the end of a body framed by it, a truncated body otherwise.
  void EndOfInput() {
    if (framing_ == BodyFraming::kUntilClose) state_ = State::kDone;
  }
  bool done() const { return state_ == State::kDone; }
  uint64_t remaining() const { return remaining_; }  // of a body framed by its length
  BodyFraming framing() const { return framing_; }

 private:
  enum class State : uint8_t { kData, kSize, kExtension, kSizeLf, kDataCr, kDataLf, kTrailer, kTrailerLine, kTrailerLf, kEndLf, kDone };
  const char* Expect(char c, char want, State next, const char* problem);

  BodyFraming framing_ = BodyFraming::kNone;
  State state_ = State::kDone;
  uint64_t remaining_ = 0;  // of the body (kLength) or of the chunk (kChunked)
  size_t digits_ = 0, line_ = 0;
};

// The status's reason phrase ("Unknown" for codes without a common one).
std::string_view ReasonPhrase(unsigned status);

// "<size in hex>\r\n" before a chunk of `n` bytes, written into `buf`; its length.
size_t ChunkHeader(uint64_t n, char (&buf)[20]);
inline constexpr std::string_view kCrlf = "\r\n";
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

}  // namespace tern::proxy
