#include "core/kube/chunked_decoder.h"

#include <algorithm>

#include "core/base/ascii.h"

namespace tern::kube {

Status ChunkedDecoder::Fail(std::string why) {
  state_ = State::kFailed;
  return Status::Error("chunked body: " + why);
}

Status ChunkedDecoder::Feed(std::string_view in, std::string& out) {
  while (!in.empty()) {
    switch (state_) {
      case State::kFailed: return Status::Error("chunked body: already failed");
      case State::kDone: return Status::Ok();
      case State::kData: {
        size_t n = static_cast<size_t>(std::min<uint64_t>(left_, in.size()));
        out.append(in.data(), n);
        in.remove_prefix(n);
        left_ -= n;
        if (left_ == 0) state_ = State::kDataEnd;
        break;
      }
      case State::kSize:
      case State::kDataEnd:
      case State::kTrailers: {
        size_t eol = in.find('\n');
        line_.append(in.substr(0, eol));
        if (line_.size() > kMaxSizeLine) return Fail("a framing line over " + std::to_string(kMaxSizeLine) + " bytes");
        if (eol == std::string_view::npos) return Status::Ok();  // the rest of the line comes later
        in.remove_prefix(eol + 1);
        if (line_.empty() || line_.back() != '\r') return Fail("a framing line not ended by CRLF");
        line_.pop_back();
        std::string line = std::move(line_);
        line_.clear();
        if (state_ == State::kDataEnd) {
          if (!line.empty()) return Fail("chunk data longer than its size");
          state_ = State::kSize;
        } else if (state_ == State::kTrailers) {
          if (line.empty()) state_ = State::kDone;  // trailer fields themselves are dropped
        } else {
          uint64_t size = 0;
          size_t i = 0;
          for (; i < line.size() && AsciiHexValue(line[i]) >= 0; ++i) {
            if (size >> 56) return Fail("chunk size out of range");
            size = size * 16 + static_cast<uint64_t>(AsciiHexValue(line[i]));
          }
          if (i == 0) return Fail("malformed chunk size \"" + line.substr(0, 32) + "\"");
          if (i < line.size() && line[i] != ';' && line[i] != ' ' && line[i] != '\t') {
            return Fail("malformed chunk size \"" + line.substr(0, 32) + "\"");
          }
          left_ = size;
          state_ = size == 0 ? State::kTrailers : State::kData;
        }
        break;
      }
    }
  }
  return Status::Ok();
}

}  // namespace tern::kube
