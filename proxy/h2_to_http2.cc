// An HTTP/2 client's stream bridged to a stream on a pooled HTTP/2 upstream connection, driven
// by nghttp2's callbacks on both sides (no coroutine per stream): the answer's head and body are
// passed on as they arrive, each try bounded by its deadline, and what follows a failed try is
// the request's AttemptLoop's to say.
#include <boost/asio.hpp>

#include "proxy/h2_bridge.h"

namespace tern::proxy {

namespace asio = boost::asio;

int H2Exchange::OnAnswerField(std::string_view name, std::string_view value) { return bridge.UpField(*this, name, value); }
void H2Exchange::OnAnswerFrame(const nghttp2_frame& frame) { bridge.UpFrame(*this, frame); }
void H2Exchange::OnAnswerData(const uint8_t* data, size_t size) { bridge.UpData(*this, data, size); }
void H2Exchange::OnClosed(uint32_t error_code) { bridge.UpClosed(*this, error_code); }
void H2Exchange::OnConnected() { bridge.UpConnected(*this); }
void H2Exchange::OnConnectionLost(ConnectionLoss loss) { bridge.UpLost(*this, loss); }
ssize_t H2Exchange::ReadRequestBody(nghttp2_session* session, uint8_t* buf, size_t length, uint32_t* flags) {
  return bridge.ReadRequestBody(*this, session, buf, length, flags);
}

int H2Bridge::UpField(H2Exchange& ex, std::string_view name, std::string_view value) {
  // Past the bounds the stream is reset (503 before the response, a reset after).
  if (ex.detached()) return 0;
  return ex.answer.Add(name, value) ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
}

void H2Bridge::UpFrame(H2Exchange& ex, const nghttp2_frame& f) {
  if (ex.detached()) return;
  if (f.hd.type == NGHTTP2_HEADERS && ex.answer.End() == AnswerHeaders::Block::kInterim) return;
  bool end = f.hd.flags & NGHTTP2_FLAG_END_STREAM;
  if (end) ex.response_end = true;
  if (f.hd.type == NGHTTP2_HEADERS && ex.up == H2Exchange::Up::kTrying) {
    // An answer's head: the loop may want another try for its status.
    if (!ex.down_closed() && ex.attempts) {
      const AttemptResult answered{
          .status = ex.answer.status(), .grpc_status = ex.answer.grpc_status(), .replayable = !ex.kept.overflow};
      if (ex.attempts->After(answered, ex.entry.flags) == NextStep::kRetry) return RetryNow(ex);
    }
    // A short body is received whole before the answer goes out, as over HTTP/1.1
    // (kHoldBytes): one that breaks off then reached nobody, and the attempt failed (503, or
    // another try); its try's deadline still holds.
    const auto length = ex.answer.content_length();
    if (!end && length && *length <= kHoldBytes) {
      ex.up = H2Exchange::Up::kHolding;
      return;
    }
    if (!ex.down_closed()) SubmitResponse(ex);
  } else if (ex.up == H2Exchange::Up::kHolding && end) {
    if (!ex.down_closed()) SubmitResponse(ex);
  } else if (!ex.down_closed() && end) {
    nghttp2_session_resume_data(down_->session(), ex.down_id);
    down_->Kick();
  }
}

void H2Bridge::UpData(H2Exchange& ex, const uint8_t* data, size_t size) {
  if (ex.down_closed() || ex.detached()) {
    pool_.Consumed(ex, size);  // nobody will read it: acknowledged and dropped
    return;
  }
  ex.response_body.Append(data, size);
  nghttp2_session_resume_data(down_->session(), ex.down_id);
  down_->Kick();
}

void H2Bridge::UpClosed(H2Exchange& ex, uint32_t error_code) {
  // Closed before its answer went out (a reset, REFUSED_STREAM): perhaps tried again.
  if (!ex.down_closed() && !ex.detached() && !ex.response_started()) {
    AttemptFailed(ex, {.failure = ResponseFlag::kUpstreamConnectionTermination,
                       .refused_stream = error_code == NGHTTP2_REFUSED_STREAM});
    return;
  }
  UpstreamOver(ex);
  if (!ex.detached()) UpstreamFailed(ex, ResponseFlag::kUpstreamConnectionTermination);  // a reset mid-answer
  if (ex.Finished()) Retire(ex);
}

void H2Bridge::UpLost(H2Exchange& ex, ConnectionLoss loss) {
  const ResponseFlag failure = loss == ConnectionLoss::kConnectFailed   ? ResponseFlag::kUpstreamConnectionFailure
                               : loss == ConnectionLoss::kProtocolError ? ResponseFlag::kUpstreamProtocolError
                                                                        : ResponseFlag::kUpstreamConnectionTermination;
  if (!ex.down_closed() && !ex.detached() && !ex.response_started()) {
    AttemptFailed(ex, {.failure = failure});
    return;
  }
  UpstreamOver(ex);
  if (!ex.detached()) UpstreamFailed(ex, failure);
  if (ex.Finished()) Retire(ex);
}

void H2Bridge::UpConnected(H2Exchange& ex) {
  if (ex.detached() || ex.response_started() || ex.try_clock) return;
  ex.try_clock = true;
  ArmDeadline(ex, ex.attempts->TryDeadline());
}

void H2Bridge::ArmDeadline(H2Exchange& ex, std::chrono::steady_clock::time_point until) {
  if (until == std::chrono::steady_clock::time_point::max()) return;
  ex.deadline = std::make_unique<Timer>(ex_, until);  // an earlier one is let go (its wait ends aborted)
  Spawn(AnswerDeadline(ex.deadline.get(), ex.down_id, ex.tries), "http2 answer deadline");
}

void H2Bridge::AttemptFailed(H2Exchange& ex, AttemptResult result) {
  result.replayable = !ex.kept.overflow;
  if (ex.attempts->After(result, ex.entry.flags) == NextStep::kRetry) return RetryNow(ex);
  pool_.Release(ex);  // reset when still open (a deadline's)
  const FailureAnswer answer = AnswerFor(result.failure);
  Local(ex, answer.status, answer.body, {});  // its flags are set
}

void H2Bridge::RetryNow(H2Exchange& ex) {
  // The stream is let go (reset when still open); what it sent of an answer is dropped, and
  // what it still sends finds no exchange.
  pool_.Release(ex);
  ex.response_body.Clear();
  // A deadline of this try that fired already (its completion queued) must not count: the
  // next try is another.
  if (ex.deadline) ex.deadline->cancel();
  ++ex.tries;
  ex.answer = AnswerHeaders{};
  ex.response_end = false;
  Requeue(ex);
  ex.up = H2Exchange::Up::kDelayed;  // the client's DATA meanwhile is kept, as during a fault delay
  Spawn(RetryAfter(ex.down_id, ex.attempts->Backoff(rng_)), "http2 retry backoff");
}

Awaitable<void> H2Bridge::RetryAfter(int32_t down_id, std::chrono::milliseconds backoff) {
  Timer timer(ex_, backoff);
  co_await timer.async_wait(kNoThrow);
  auto it = exchanges_.find(down_id);  // the client may have reset the stream meanwhile
  if (it != exchanges_.end() && !it->second->down_closed() && !it->second->detached()) {
    H2Exchange& ex = *it->second;
    ex.attempts->MoveOn(rng_);
    ex.entry.upstream = ex.attempts->to();
    Forward(ex);
  }
}

Awaitable<void> H2Bridge::AnswerDeadline(Timer* timer, int32_t down_id, int try_number) {
  auto [ec] = co_await timer->async_wait(kNoThrow);
  // Counted in live_tasks_: the bridge outlives this, even when its completion was queued
  // before the exchange (and the timer) went away; the exchange is looked up again, and a
  // deadline of an earlier try is ignored.
  auto it = ec ? exchanges_.end() : exchanges_.find(down_id);
  if (it != exchanges_.end() && it->second->tries == try_number && !it->second->response_started() &&
      !it->second->down_closed() && !it->second->detached()) {
    // A perTryTimeout before the route's: perhaps tried again.
    AttemptFailed(*it->second, {.failure = ResponseFlag::kUpstreamRequestTimeout});
  }
}

ssize_t H2Bridge::ReadRequestBody(H2Exchange& ex, nghttp2_session* upstream, uint8_t* buf, size_t length, uint32_t* flags) {
  size_t n = ex.request_body.Take(buf, length);
  // Kept for a retry; credits the connection's window even once the client's stream is closed.
  if (size_t fresh = n > 0 ? ex.Sent(buf, n) : 0) {
    nghttp2_session_consume(down_->session(), ex.down_id, fresh);
    down_->Kick();
  }
  if (ex.request_body.size() == 0) {
    if (!ex.request_end()) return n > 0 ? static_cast<ssize_t>(n) : static_cast<ssize_t>(NGHTTP2_ERR_DEFERRED);
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!ex.request_trailers.empty()) {
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      NameValues nva(ex.request_trailers);
      nghttp2_submit_trailer(upstream, ex.id(), nva.data(), nva.size());
    }
  }
  return static_cast<ssize_t>(n);
}

}  // namespace tern::proxy
