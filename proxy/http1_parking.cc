#include "proxy/http1_parking.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "core/metrics/registry.h"
#include "proxy/batched_send.h"
#include "proxy/http1_session.h"
#include "proxy/log_escaped.h"

namespace tern::proxy {

namespace asio = boost::asio;

ParkedHttp1::ParkedHttp1(Socket s, HttpContext c, Counter* closed, std::atomic<int>* active)
    : socket(std::move(s)), ctx(std::move(c)), closed_(closed), active_(active) {
  ++*active_;
}

ParkedHttp1::~ParkedHttp1() {
  if (listed_in_) listed_in_->Unlink(this);
  if (closed_) closed_->Inc();
  --*active_;
}

Http1Parking::~Http1Parking() {
  // Whatever is still parked goes with the io_context's pending waits, after this: it must not
  // unlink itself from a list that is gone.
  for (ParkedHttp1* c = head_; c;) {
    ParkedHttp1* next = c->next_;
    c->listed_in_ = nullptr;
    c = next;
  }
}

void Http1Parking::Link(ParkedHttp1* c) {
  c->prev_ = nullptr;
  c->next_ = head_;
  if (head_) head_->prev_ = c;
  head_ = c;
  c->listed_in_ = this;
  ++size_;
}

void Http1Parking::Unlink(ParkedHttp1* c) {
  if (c->listed_in_ != this) return;
  if (c->prev_) c->prev_->next_ = c->next_;
  else head_ = c->next_;
  if (c->next_) c->next_->prev_ = c->prev_;
  c->prev_ = c->next_ = nullptr;
  c->listed_in_ = nullptr;
  --size_;
}

void Http1Parking::Park(std::unique_ptr<ParkedHttp1> c, std::chrono::steady_clock::time_point idle_deadline) {
  if (shut_down_) return;  // `c` closes
  c->idle_deadline_ = idle_deadline;
  Link(c.get());
  Socket& socket = c->socket;
  socket.async_wait(Socket::wait_read, [this, c = std::move(c)](boost::system::error_code ec) mutable {
    Unlink(c.get());
    // Closed by the sweep (idle past its deadline), or the worker is ending: `c` closes.
    if (ec || shut_down_) return;
    const Logger& log = *c->ctx.log;
    asio::co_spawn(ex_, Serve(std::move(c)), LogEscaped(log, "http1 keep-alive session"));
  });
  if (!sweeping_) {
    sweeping_ = true;
    asio::co_spawn(ex_, Sweep(), asio::detached);
  }
}

Awaitable<void> Http1Parking::Serve(std::unique_ptr<ParkedHttp1> c) {
  const Http1SessionEnd end = co_await ServeHttp1(c->socket, "", c->ctx);
  if (end.parked) Park(std::move(c), end.idle_deadline);
}

// Once a second, the connections past their idle deadline are closed (their wait then ends
// aborted, and they go). The whole list is looked at: 16k parked connections cost ~0.1 ms.
Awaitable<void> Http1Parking::Sweep() {
  while (head_ && !shut_down_) {
    sweep_timer_.expires_after(std::chrono::seconds(1));
    auto [ec] = co_await sweep_timer_.async_wait(kNoThrow);
    if (ec) break;
    const auto now = std::chrono::steady_clock::now();
    for (ParkedHttp1* c = head_; c;) {
      ParkedHttp1* next = c->next_;
      if (c->idle_deadline_ <= now) {
        Unlink(c);
        boost::system::error_code ignored;
        CloseSocket(c->socket, ignored);
      }
      c = next;
    }
  }
  sweeping_ = false;
}

void Http1Parking::Shutdown() {
  shut_down_ = true;
  sweep_timer_.cancel();
}

}  // namespace tern::proxy
