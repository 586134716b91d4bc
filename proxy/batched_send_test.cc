#include "proxy/batched_send.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tern::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// `n` connected loopback pairs: {the side the test writes, the side it reads}.
struct Pairs {
  explicit Pairs(asio::io_context& io, size_t n) : acceptor(io.get_executor(), {asio::ip::make_address("127.0.0.1"), 0}) {
    for (size_t i = 0; i < n; ++i) {
      readers.emplace_back(io.get_executor());
      readers.back().connect(acceptor.local_endpoint());
      writers.push_back(acceptor.accept());
    }
  }
  Acceptor acceptor;
  std::vector<Socket> writers, readers;
};

std::string ReadExactly(Socket& s, size_t n) {
  std::string out(n, '\0');
  asio::read(s, asio::buffer(out));
  return out;
}

// Every case runs on both paths: batched through io_uring, and plain sendmsg (TERN_IO_URING=off,
// as where io_uring is refused). The setting is read when a context's service is made.
class BatchedSendsOn : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) unsetenv("TERN_IO_URING");
    else setenv("TERN_IO_URING", "off", 1);
  }
  void TearDown() override { unsetenv("TERN_IO_URING"); }
};

INSTANTIATE_TEST_SUITE_P(Paths, BatchedSendsOn, testing::Values(true, false),
                         [](const testing::TestParamInfo<bool>& p) { return p.param ? "IoUring" : "Sendmsg"; });

TEST_P(BatchedSendsOn, ThePathIsTheOneAsked) {
  asio::io_context io;
  auto& sends = asio::use_service<BatchedSends>(io);
  if (!GetParam()) EXPECT_FALSE(sends.batching()) << "TERN_IO_URING=off sends with sendmsg";
  else if (!sends.batching()) GTEST_SKIP() << "io_uring is not available on this kernel";
}

TEST_P(BatchedSendsOn, EveryWriterOfATurnIsSentAndResumed) {
  asio::io_context io;
  auto& sends = asio::use_service<BatchedSends>(io);
  Pairs pairs(io, 8);
  std::vector<std::string> parts(8);
  std::vector<std::tuple<boost::system::error_code, size_t>> results(8, {asio::error::would_block, 0});
  for (size_t i = 0; i < 8; ++i) {
    parts[i] = "message " + std::to_string(i);
    asio::co_spawn(io, [&, i]() -> Awaitable<void> {
      std::array<asio::const_buffer, 3> gather{asio::buffer("<", 1), asio::buffer(parts[i]), asio::buffer(">", 1)};
      results[i] = co_await sends.Send(pairs.writers[i], gather);
    }, asio::detached);
  }
  io.run();
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_FALSE(std::get<0>(results[i])) << i;
    EXPECT_EQ(std::get<1>(results[i]), parts[i].size() + 2) << i;
    EXPECT_EQ(ReadExactly(pairs.readers[i], parts[i].size() + 2), "<" + parts[i] + ">");
  }
}

TEST_P(BatchedSendsOn, MoreWritersInATurnThanTheRingHoldsAllGoInOrder) {
  asio::io_context io;
  Pairs pairs(io, 3);
  BatchedSends& sends = BatchedSends::Of(pairs.writers[0]);
  constexpr size_t kWriters = 700;  // the ring holds 256: submitted (and reaped) mid-turn twice
  std::vector<std::string> messages(kWriters);
  size_t completed = 0, failed = 0;
  for (size_t i = 0; i < kWriters; ++i) {
    messages[i] = std::to_string(1000 + i) + ";";
    asio::co_spawn(io, [&, i]() -> Awaitable<void> {
      asio::const_buffer b = asio::buffer(messages[i]);
      auto [ec, n] = co_await sends.Send(pairs.writers[i % 3], {&b, 1});
      ++completed;
      failed += ec || n != messages[i].size();
    }, asio::detached);
  }
  // A writer to a socket already closed fails alone.
  Socket closed(io.get_executor());
  boost::system::error_code closed_ec;
  asio::co_spawn(io, [&]() -> Awaitable<void> {
    asio::const_buffer b = asio::buffer("x", 1);
    std::tie(closed_ec, std::ignore) = co_await sends.Send(closed, {&b, 1});
  }, asio::detached);
  io.run();
  EXPECT_EQ(completed, kWriters);
  EXPECT_EQ(failed, 0u);
  EXPECT_TRUE(closed_ec) << "a closed socket's write fails";
  for (size_t r = 0; r < 3; ++r) {
    std::string want;
    for (size_t i = r; i < kWriters; i += 3) want += messages[i];
    EXPECT_EQ(ReadExactly(pairs.readers[r], want.size()), want) << "socket " << r;
  }
}

TEST_P(BatchedSendsOn, AFullSocketTakesWhatFitsWithoutAnError) {
  asio::io_context io;
  Pairs pairs(io, 1);
  BatchedSends& sends = BatchedSends::Of(pairs.writers[0]);
  std::string big(8 << 20, 'x');  // more than the socket buffers hold: nobody reads
  std::vector<std::tuple<boost::system::error_code, size_t>> got;
  asio::co_spawn(io, [&]() -> Awaitable<void> {
    for (int i = 0; i < 2; ++i) {
      asio::const_buffer b = asio::buffer(big);
      got.push_back(co_await sends.Send(pairs.writers[0], {&b, 1}));
    }
  }, asio::detached);
  io.run();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_FALSE(std::get<0>(got[0]));
  EXPECT_GT(std::get<1>(got[0]), 0u);
  EXPECT_LT(std::get<1>(got[0]), big.size()) << "a short send, never a wait";
  EXPECT_FALSE(std::get<0>(got[1])) << "a full socket is no error";
  EXPECT_LT(std::get<1>(got[1]), big.size()) << "(what room an ACK freed meanwhile, at most)";
}

TEST_P(BatchedSendsOn, APeerThatResetGivesAnError) {
  asio::io_context io;
  Pairs pairs(io, 1);
  BatchedSends& sends = BatchedSends::Of(pairs.writers[0]);
  pairs.readers[0].set_option(asio::socket_base::linger(true, 0));
  pairs.readers[0].close();  // a reset
  boost::system::error_code ec;
  asio::co_spawn(io, [&]() -> Awaitable<void> {
    for (int i = 0; i < 50 && !ec; ++i) {  // the reset may land after the first send
      asio::const_buffer b = asio::buffer("after the reset", 15);
      std::tie(ec, std::ignore) = co_await sends.Send(pairs.writers[0], {&b, 1});
      if (!ec) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }, asio::detached);
  io.run();
  EXPECT_TRUE(ec == asio::error::connection_reset || ec == asio::error::broken_pipe) << ec.message();
}

TEST_P(BatchedSendsOn, ASocketClosedBeforeTheFlushIsNotWrittenUnderItsOldNumber) {
  // Closed in the same turn as its write was queued: by the flush, the descriptor number
  // belongs to a socket opened meanwhile (the lowest free number is reused at once).
  asio::io_context io;
  Pairs pairs(io, 1);
  BatchedSends& sends = BatchedSends::Of(pairs.writers[0]);
  if (!sends.batching()) GTEST_SKIP() << "without io_uring each write goes out at once: its number cannot be reused before";
  const int old_fd = pairs.writers[0].native_handle();
  boost::system::error_code ec;
  std::optional<Socket> reader, writer;
  asio::co_spawn(io, [&]() -> Awaitable<void> {
    asio::const_buffer b = asio::buffer("for the closed socket only", 26);
    std::tie(ec, std::ignore) = co_await sends.Send(pairs.writers[0], {&b, 1});
  }, asio::detached);
  asio::post(io, [&] {  // runs after the writer queued its send, before the flush
    boost::system::error_code ignored;
    CloseSocket(pairs.writers[0], ignored);
    reader.emplace(io.get_executor());
    reader->connect(pairs.acceptor.local_endpoint());
    writer.emplace(pairs.acceptor.accept());
  });
  io.run();
  EXPECT_EQ(ec, asio::error::operation_aborted);
  ASSERT_TRUE(reader && writer);
  EXPECT_TRUE(reader->native_handle() == old_fd || writer->native_handle() == old_fd) << "the number was reused";
  for (Socket* s : {&*reader, &*writer}) {
    s->non_blocking(true);
    char c;
    boost::system::error_code rec;
    s->read_some(asio::buffer(&c, 1), rec);
    EXPECT_EQ(rec, asio::error::would_block) << "nothing arrived on the new connection";
  }
}

TEST_P(BatchedSendsOn, WritersStillWaitingAreDestroyedWithTheirContext) {
  bool resumed = false;
  {
    asio::io_context io;
    Pairs pairs(io, 1);
    BatchedSends& sends = BatchedSends::Of(pairs.writers[0]);
      asio::co_spawn(io, [&]() -> Awaitable<void> {
      asio::const_buffer b = asio::buffer("never flushed", 13);
      co_await sends.Send(pairs.writers[0], {&b, 1});
      resumed = true;
    }, asio::detached);
    io.poll_one();  // the writer runs to its Send; the flush stays queued
    EXPECT_FALSE(resumed);
  }  // the context goes with the writer still waiting (ASan: nothing leaks, nothing is touched after)
  EXPECT_FALSE(resumed);
}

}  // namespace
}  // namespace tern::proxy
