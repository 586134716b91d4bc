// HTTP/2 upstream connections for an HTTP/1.1 client's requests (h2UpgradePolicy UPGRADE toward
// a sidecar, or a port declared http2/grpc): one connection per endpoint, shared by the requests
// of one downstream connection, driven from that connection's coroutine. A request is a Stream:
// its body is fed in, its answer waited for and taken out; flow control is end to end (the
// upstream's window opens only as the client takes the answer).
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <vector>

#include "proxy/h2_connection.h"
#include "proxy/h2_fields.h"

namespace tern::proxy {

class H2ClientPool final : public H2Handler {
 public:
  struct Stream {
    explicit Stream(const boost::asio::any_io_executor& ex) : wake(ex) {}
    H2Connection* conn = nullptr;
    int32_t id = -1;
    ByteQueue request_body;
    bool request_end = false;
    AnswerHeaders answer;
    bool headers_done = false, end = false;
    bool closed = false, connect_failed = false;
    ByteQueue body;
    boost::asio::steady_timer wake;  // cancelled whenever something changed
  };

  H2ClientPool(boost::asio::any_io_executor ex, bool passthrough_source, std::chrono::milliseconds connect_timeout);
  ~H2ClientPool() override;

  // Opens a stream to `to` (connecting first when needed); the body, if any, is fed with
  // Feed/EndRequest. Null when the connection cannot take a stream.
  std::unique_ptr<Stream> Open(const boost::asio::ip::tcp::endpoint& to, const Headers& request, bool has_body);
  void Feed(Stream& s, const uint8_t* data, size_t size);
  void EndRequest(Stream& s);
  // The client took `size` bytes of the answer: the upstream may send as much more.
  void Consumed(Stream& s, size_t size);
  // The client is gone: the upstream stream is reset. The Stream may be destroyed afterwards.
  void Cancel(Stream& s);
  // Waits until something about `s` changed.
  boost::asio::awaitable<void> Wait(Stream& s);
  // Ends every connection and waits for their coroutines.
  boost::asio::awaitable<void> Shutdown();

  int OnBeginFrame(H2Connection&, const nghttp2_frame_hd&) override { return 0; }
  int OnBeginHeaders(H2Connection&, const nghttp2_frame&) override { return 0; }
  int OnHeader(H2Connection& c, const nghttp2_frame& f, std::string_view name, std::string_view value) override;
  int OnFrameRecv(H2Connection& c, const nghttp2_frame& f) override;
  int OnData(H2Connection& c, int32_t stream, const uint8_t* data, size_t size) override;
  int OnStreamClose(H2Connection& c, int32_t stream, uint32_t error_code) override;

 private:
  boost::asio::awaitable<void> Run(H2Connection* conn, boost::asio::ip::tcp::endpoint to);
  static ssize_t ReadBody(nghttp2_session* session, int32_t stream, uint8_t* buf, size_t length, uint32_t* flags,
                          nghttp2_data_source* source, void* user_data);

  boost::asio::any_io_executor ex_;
  bool passthrough_source_;
  std::chrono::milliseconds connect_timeout_;
  std::vector<std::unique_ptr<H2Connection>> conns_;
  std::map<boost::asio::ip::tcp::endpoint, H2Connection*> by_endpoint_;
  std::map<H2Connection*, std::vector<Stream*>> streams_;  // open streams per connection
  int live_ = 0;
  boost::asio::steady_timer gone_;
};

}  // namespace tern::proxy
