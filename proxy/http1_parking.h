// HTTP/1.1 keep-alive connections between requests, held by their worker with no session at all.
//
// A session whose client idles past kParkAfter with nothing of a next request read returns
// (Http1SessionEnd::parked): its coroutine frames, buffers and heads are gone, and what stays is
// the socket, the connection's context and an asynchronous wait for readability
// (bench/idle_connections.sh, 16,000 idle clients: 1.3-1.6 KB each, 8.6 KB before parking
// moved here). When the client sends again, a new session starts on the socket; past its idle
// deadline (the header timeout, as for a session waiting in place) the connection is closed
// without a word.
//
// One per worker, used by its thread only.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>

#include "proxy/asio_types.h"
#include "proxy/http_context.h"

namespace tern {
class Counter;
}

namespace tern::proxy {

class Http1Parking;

// One parked connection, and what ends with it: it counts as active (the server's drain waits
// for it) and, once it closes, as a closed connection of its service.
class ParkedHttp1 {
 public:
  ParkedHttp1(Socket socket, HttpContext ctx, Counter* closed, std::atomic<int>* active);
  ~ParkedHttp1();
  ParkedHttp1(const ParkedHttp1&) = delete;
  ParkedHttp1& operator=(const ParkedHttp1&) = delete;

  Socket socket;
  HttpContext ctx;

 private:
  friend class Http1Parking;
  Counter* closed_;
  std::atomic<int>* active_;
  std::chrono::steady_clock::time_point idle_deadline_;
  // The parking's list (its sweep closes the ones past their deadline).
  ParkedHttp1* prev_ = nullptr;
  ParkedHttp1* next_ = nullptr;
  Http1Parking* listed_in_ = nullptr;
};

class Http1Parking {
 public:
  explicit Http1Parking(Executor ex) : ex_(ex), sweep_timer_(ex) {}
  ~Http1Parking();
  Http1Parking(const Http1Parking&) = delete;
  Http1Parking& operator=(const Http1Parking&) = delete;

  // Holds `c` until its client sends again (a new session starts on it, and may park it again)
  // or `idle_deadline` passes (it is closed).
  void Park(std::unique_ptr<ParkedHttp1> c, std::chrono::steady_clock::time_point idle_deadline);
  size_t size() const { return size_; }
  // The worker is ending: no connection is parked again; the parked ones go with the io_context.
  void Shutdown();

 private:
  friend class ParkedHttp1;  // unlinks itself as it goes
  void Link(ParkedHttp1* c);
  void Unlink(ParkedHttp1* c);
  Awaitable<void> Serve(std::unique_ptr<ParkedHttp1> c);
  Awaitable<void> Sweep();

  Executor ex_;
  Timer sweep_timer_;
  ParkedHttp1* head_ = nullptr;
  size_t size_ = 0;
  bool sweeping_ = false, shut_down_ = false;
};

}  // namespace tern::proxy
