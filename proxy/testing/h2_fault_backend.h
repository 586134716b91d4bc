// An HTTP/2 (prior knowledge) backend whose Script makes chosen streams fail as an HTTP/2
// server can: the connection reset, garbage instead of frames, an answer cut mid-body, a head
// whose body never comes, GOAWAY mid-stream or GOAWAY refusing a stream it did not process, a
// slow answer or none. Other streams on the connection are served meanwhile (each answer is
// scheduled, not slept on). gRPC requests (content-type application/grpc) get a gRPC answer: one
// message, then grpc-status 0 in the trailers; the request is complete at its first message,
// so a client still streaming gets its answer; a scripted failure is a trailers-only answer
// (503: UNAVAILABLE). Test-only: one thread per connection, bounded by
// the test's own requests.
#pragma once

#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "core/capture/testing/netns_traffic.h"
#include "proxy/testing/proxy_in_pod.h"

namespace tern::proxy::testing_support {

class H2FaultBackend {
 public:
  H2FaultBackend(const nettest::Netns& ns, const Endpoint& at, std::string name, Script script = nullptr)
      : listener_(ns, at), name_(std::move(name)), script_(std::move(script)) {
    thread_ = std::thread([this] { Serve(); });
  }
  ~H2FaultBackend() {
    done_ = true;
    thread_.join();
    for (auto& t : conns_) t.join();
  }
  H2FaultBackend(const H2FaultBackend&) = delete;
  H2FaultBackend& operator=(const H2FaultBackend&) = delete;
  bool ok() const { return listener_.ok(); }
  void Stop() { done_ = true; }
  int requests() const { return requests_; }
  int connections() const { return connections_; }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kNoLimit = std::string::npos;

  struct Stream {
    int32_t id = 0;
    std::string method, path, content_type;
    std::string received;
    bool scheduled = false, answered = false;
    Reply reply;
    Clock::time_point due, cut_at = Clock::time_point::max();
    std::string body;
    size_t sent = 0, limit = kNoLimit;
    bool grpc = false;
  };

  // One accepted connection: its nghttp2 server session and streams, served by one thread.
  class Connection {
   public:
    Connection(H2FaultBackend& backend, int fd) : backend_(backend), fd_(fd) {
      nghttp2_session_callbacks* cbs;
      nghttp2_session_callbacks_new(&cbs);
      nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
        auto* self = static_cast<Connection*>(u);
        self->streams_[f->hd.stream_id].id = f->hd.stream_id;
        return 0;
      });
      nghttp2_session_callbacks_set_on_header_callback(
          cbs, [](nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t, void* u) {
            auto* self = static_cast<Connection*>(u);
            auto it = self->streams_.find(f->hd.stream_id);
            if (it == self->streams_.end()) return 0;
            std::string name(reinterpret_cast<const char*>(n), nl), value(reinterpret_cast<const char*>(v), vl);
            if (name == ":method") it->second.method = value;
            if (name == ":path") it->second.path = value;
            if (name == "content-type") it->second.content_type = value;
            return 0;
          });
      nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
          cbs, [](nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t n, void* u) {
            auto* self = static_cast<Connection*>(u);
            auto it = self->streams_.find(id);
            if (it == self->streams_.end()) return 0;
            it->second.received.append(reinterpret_cast<const char*>(d), n);
            if (it->second.content_type.rfind("application/grpc", 0) == 0 && FirstMessageWhole(it->second.received)) {
              self->Schedule(it->second);
            }
            return 0;
          });
      nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, [](nghttp2_session*, const nghttp2_frame* f, void* u) {
        auto* self = static_cast<Connection*>(u);
        auto it = self->streams_.find(f->hd.stream_id);
        if (it != self->streams_.end() && (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) self->Schedule(it->second);
        return 0;
      });
      nghttp2_session_callbacks_set_on_stream_close_callback(cbs, [](nghttp2_session*, int32_t id, uint32_t, void* u) {
        static_cast<Connection*>(u)->streams_.erase(id);
        return 0;
      });
      nghttp2_session_server_new(&session_, cbs, this);
      nghttp2_session_callbacks_del(cbs);
      nghttp2_settings_entry limit{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100};
      nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, &limit, 1);
    }
    ~Connection() {
      nghttp2_session_del(session_);
      if (fd_ >= 0) close(fd_);
    }

    void Run() {
      while (!backend_.done_ && fd_ >= 0) {
        if (!Flush()) break;
        Act();
        if (fd_ < 0) break;
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 10) <= 0) continue;
        uint8_t buf[16384];
        ssize_t n = recv(fd_, buf, sizeof buf, 0);
        if (n <= 0 || nghttp2_session_mem_recv(session_, buf, static_cast<size_t>(n)) < 0) break;
      }
    }

   private:
    static bool FirstMessageWhole(const std::string& bytes) {
      if (bytes.size() < 5) return false;
      uint32_t length = static_cast<uint32_t>(static_cast<uint8_t>(bytes[1])) << 24 | static_cast<uint32_t>(static_cast<uint8_t>(bytes[2])) << 16 |
                        static_cast<uint32_t>(static_cast<uint8_t>(bytes[3])) << 8 | static_cast<uint8_t>(bytes[4]);
      return bytes.size() >= 5 + length;
    }
    void Schedule(Stream& s) {
      if (s.scheduled) return;
      s.scheduled = true;
      int n = backend_.requests_++;
      s.reply = backend_.script_ ? backend_.script_(n, s.method + " " + s.path + " HTTP/2") : Reply{};
      s.due = Clock::now() + s.reply.delay;
      s.grpc = s.content_type.rfind("application/grpc", 0) == 0;
    }
    bool Flush() {
      for (;;) {
        const uint8_t* data;
        ssize_t n = nghttp2_session_mem_send(session_, &data);
        if (n < 0) return false;
        if (n == 0) return true;
        if (!nettest::SendAll(fd_, std::string(reinterpret_cast<const char*>(data), static_cast<size_t>(n)))) return false;
      }
    }
    // Ends the connection: a reset, or a FIN after which what the proxy still sends is read
    // (for up to 300 ms) before closing, since closing with unread bytes would send a reset, and
    // a reset can discard what was sent just before it.
    void End(bool reset) {
      if (reset) {
        linger l{1, 0};  // close() sends RST
        setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
      } else {
        shutdown(fd_, SHUT_WR);
        for (auto until = Clock::now() + std::chrono::milliseconds(300); Clock::now() < until;) {
          pollfd p{fd_, POLLIN, 0};
          if (poll(&p, 1, 10) <= 0) continue;
          char buf[4096];
          if (recv(fd_, buf, sizeof buf, 0) <= 0) break;
        }
      }
      close(fd_);
      fd_ = -1;
    }

    // Answers (or fails) the streams whose time has come.
    void Act() {
      auto now = Clock::now();
      for (auto& [id, s] : streams_) {
        if (s.scheduled && !s.answered && now >= s.due) {
          s.answered = true;
          if (!Answer(s)) return;  // the connection ended
        }
        if (now >= s.cut_at) {
          if (s.reply.goaway_mid_body) {
            nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_NO_ERROR, nullptr, 0);
            Flush();
          }
          End(/*reset=*/s.reply.break_mid_body);
          return;
        }
      }
    }

    // False when the answer ended the connection.
    bool Answer(Stream& s) {
      const Reply& r = s.reply;
      if (r.reset) {
        End(true);
        return false;
      }
      if (r.garbage) {
        nettest::SendAll(fd_, "SSH-2.0-OpenSSH_9.2 this is no HTTP\r\n\r\n");
        End(false);
        return false;
      }
      if (r.goaway_before_answer) {
        nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, std::max(0, s.id - 2), NGHTTP2_NO_ERROR, nullptr, 0);
        Flush();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        End(false);
        return false;
      }
      std::string message = backend_.name_ + " " + s.method + " " + s.path;
      if (!s.received.empty()) message += " received " + std::to_string(s.received.size());
      if (s.path.find("/big") != std::string::npos) message += std::string(300000, 'b');
      std::vector<std::pair<std::string, std::string>> head = {{":status", std::to_string(r.status)}, {"x-backend", backend_.name_}};
      if (s.grpc && r.status != 200) {
        // A failed call, in gRPC's trailers-only form: 503 is UNAVAILABLE, anything else UNKNOWN.
        head = {{":status", "200"}, {"content-type", "application/grpc"}, {"grpc-status", r.status == 503 ? "14" : "2"},
                {"grpc-message", "scripted failure"}};
        std::vector<nghttp2_nv> nva;
        for (auto& [n, v] : head) {
          nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
        }
        nghttp2_submit_response(session_, s.id, nva.data(), nva.size(), nullptr);
        return true;
      }
      if (s.grpc) {
        uint32_t n = static_cast<uint32_t>(message.size());
        s.body = std::string{'\0', static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)} +
                 message;
        head.emplace_back("content-type", "application/grpc");
      } else {
        s.body = message;
        head.emplace_back("content-length", std::to_string(s.body.size()));
      }
      if (r.close_after_headers) s.limit = 0;
      if (r.break_mid_body || r.goaway_mid_body) {
        s.limit = s.body.size() / 2;
        s.cut_at = Clock::now() + std::chrono::milliseconds(200);  // what was sent arrives before the cut
      }
      std::vector<nghttp2_nv> nva;
      for (auto& [n, v] : head) {
        nva.push_back({reinterpret_cast<uint8_t*>(n.data()), reinterpret_cast<uint8_t*>(v.data()), n.size(), v.size(), NGHTTP2_NV_FLAG_NONE});
      }
      nghttp2_data_provider provider{};
      provider.source.ptr = &s;
      provider.read_callback = [](nghttp2_session* session, int32_t id, uint8_t* buf, size_t length, uint32_t* flags,
                                  nghttp2_data_source* source, void*) -> ssize_t {
        auto* st = static_cast<Stream*>(source->ptr);
        size_t until = std::min(st->body.size(), st->limit);
        size_t n = std::min(length, until - st->sent);
        std::memcpy(buf, st->body.data() + st->sent, n);
        st->sent += n;
        if (st->sent < st->body.size()) return n ? static_cast<ssize_t>(n) : ssize_t{NGHTTP2_ERR_DEFERRED};
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->grpc) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          static char name[] = "grpc-status", value[] = "0";
          nghttp2_nv trailer{reinterpret_cast<uint8_t*>(name), reinterpret_cast<uint8_t*>(value), sizeof name - 1, sizeof value - 1,
                             NGHTTP2_NV_FLAG_NONE};
          nghttp2_submit_trailer(session, id, &trailer, 1);
        }
        return static_cast<ssize_t>(n);
      };
      nghttp2_submit_response(session_, s.id, nva.data(), nva.size(), &provider);
      if (r.close_after_headers) {
        Flush();
        End(false);
        return false;
      }
      return true;
    }

    H2FaultBackend& backend_;
    int fd_;
    nghttp2_session* session_ = nullptr;
    std::map<int32_t, Stream> streams_;
  };

  void Serve() {
    while (!done_) {
      Endpoint local, peer;
      int fd = listener_.AcceptConnection(&local, &peer);  // waits at most three seconds
      if (fd < 0) continue;
      ++connections_;
      conns_.emplace_back([this, fd] { Connection(*this, fd).Run(); });
    }
  }

  Listener listener_;
  std::string name_;
  Script script_;
  std::atomic<int> requests_{0}, connections_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;
  std::vector<std::thread> conns_;
};

}  // namespace tern::proxy::testing_support
