// A minimal HTTP/2 client over a blocking socket (nghttp2 sends the preface itself), for what
// nghttp cannot send: it does not check the headers it sends (NO_HTTP_MESSAGING), so malformed
// requests go out as written; a request body can be held open after its first bytes (a gRPC
// stream still sending) and ended later. Test-only.
#pragma once

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace tern::proxy::testing_support {

class RawH2Client {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;

  explicit RawH2Client(int fd) : fd_(fd) {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(
        cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t,
                void* u) {
          auto* self = static_cast<RawH2Client*>(u);
          std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
          if (name == ":status") self->status[f->hd.stream_id] = value;
          self->fields[f->hd.stream_id] += name + ": " + value + "\n";
          return 0;
        });
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
      auto* self = static_cast<RawH2Client*>(u);
      if (f->hd.type == NGHTTP2_RST_STREAM) self->reset[f->hd.stream_id] = f->rst_stream.error_code;
      if (f->hd.type == NGHTTP2_GOAWAY) self->goaway = static_cast<int>(f->goaway.error_code);
      if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        self->ended.insert(f->hd.stream_id);
      }
      return 0;
    });
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
        cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
          static_cast<RawH2Client*>(u)->body[id].append(reinterpret_cast<const char*>(d), n);
          return 0;
        });
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, int32_t id, uint32_t, void* u) {
      static_cast<RawH2Client*>(u)->closed.push_back(id);
      return 0;
    });
    nghttp2_option* opt;
    nghttp2_option_new(&opt);
    nghttp2_option_set_no_http_messaging(opt, 1);
    nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);  // send what a peer may refuse
    nghttp2_session_client_new2(&session_, cbs, this, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, nullptr, 0);
  }
  ~RawH2Client() {
    nghttp2_session_del(session_);
    close(fd_);
  }
  RawH2Client(const RawH2Client&) = delete;
  RawH2Client& operator=(const RawH2Client&) = delete;

  // A request with no body (END_STREAM on its HEADERS).
  int32_t Request(const Fields& headers) { return Submit(headers, nullptr); }
  // A request with `body`; with `hold`, the stream stays open after it until EndBody.
  int32_t Request(const Fields& headers, std::string payload, bool hold) {
    auto out = std::make_unique<Outgoing>(Outgoing{std::move(payload), 0, hold});
    Outgoing* raw = out.get();
    nghttp2_data_provider provider{};
    provider.source.ptr = raw;
    provider.read_callback = [](nghttp2_session*, int32_t, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source* source,
                                void*) -> ssize_t {
      auto* o = static_cast<Outgoing*>(source->ptr);
      size_t n = std::min(length, o->bytes.size() - o->sent);
      std::memcpy(buf, o->bytes.data() + o->sent, n);
      o->sent += n;
      if (o->sent < o->bytes.size()) return static_cast<ssize_t>(n);
      if (o->hold) return n ? static_cast<ssize_t>(n) : ssize_t{NGHTTP2_ERR_DEFERRED};
      *flags |= NGHTTP2_DATA_FLAG_EOF;
      return static_cast<ssize_t>(n);
    };
    int32_t id = Submit(headers, &provider);
    if (id > 0) outgoing_[id] = std::move(out);
    return id;
  }
  // Ends a held request body.
  void EndBody(int32_t id) {
    auto it = outgoing_.find(id);
    if (it == outgoing_.end() || !it->second->hold) return;
    it->second->hold = false;
    nghttp2_session_resume_data(session_, id);
  }
  // More of a held request body.
  void SendBody(int32_t id, const std::string& more) {
    auto it = outgoing_.find(id);
    if (it == outgoing_.end() || !it->second->hold) return;
    it->second->bytes += more;
    nghttp2_session_resume_data(session_, id);
  }
  void Reset(int32_t stream) { nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, stream, NGHTTP2_CANCEL); }
  // Writes what the session has queued; false once the peer is gone.
  bool Flush() {
    for (;;) {
      const uint8_t* data;
      ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n <= 0) return n == 0;
      if (!SendRaw(std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(n)))) return false;
    }
  }
  bool SendRaw(const std::string& bytes) { return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size()); }
  // Flushes and reads until `done()` or the peer closes, for at most `deadline`.
  bool Pump(const std::function<bool()>& done, std::chrono::milliseconds deadline = std::chrono::milliseconds(5000)) {
    auto end = std::chrono::steady_clock::now() + deadline;
    while (std::chrono::steady_clock::now() < end) {
      // A write that fails (the proxy ended the connection) still leaves what the proxy sent
      // before, its GOAWAY among it, to be read: only the read side says the peer is gone.
      Flush();
      if (done()) return true;
      if (eof) return false;
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 0, 50))) <= 0) continue;
      char buf[16384];
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        eof = true;
        continue;
      }
      if (nghttp2_session_mem_recv(session_, reinterpret_cast<uint8_t*>(buf), static_cast<size_t>(n)) < 0) eof = true;
    }
    return done();
  }
  bool Closed(int32_t id) const { return std::find(closed.begin(), closed.end(), id) != closed.end(); }

  std::map<int32_t, std::string> status, body;
  std::map<int32_t, std::string> fields;  // every field received, "name: value\n"
  std::map<int32_t, uint32_t> reset;
  std::set<int32_t> ended;  // streams whose answer ended with END_STREAM
  std::vector<int32_t> closed;
  int goaway = -1;
  bool eof = false;

 private:
  struct Outgoing {
    std::string bytes;
    size_t sent;
    bool hold;
  };
  int32_t Submit(const Fields& headers, const nghttp2_data_provider* provider) {
    std::vector<nghttp2_nv> nva;
    for (const auto& [n, v] : headers) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())),
                     n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    return nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), provider, nullptr);
  }

  int fd_;
  nghttp2_session* session_ = nullptr;
  std::map<int32_t, std::unique_ptr<Outgoing>> outgoing_;
};

}  // namespace tern::proxy::testing_support
