// The I/O types every session, pool and listener uses, bound to the worker's own io_context
// executor instead of the type-erased any_io_executor: each asynchronous operation then copies
// a pointer where it copied (and destroyed) a polymorphic executor, on the hot path of every
// request.
#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace tern::proxy {

using Executor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using Acceptor = boost::asio::basic_socket_acceptor<boost::asio::ip::tcp, Executor>;
using Timer = boost::asio::basic_waitable_timer<std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;
template <class T = void>
using Awaitable = boost::asio::awaitable<T, Executor>;
// co_await on an operation: its results as a tuple (error codes returned, never thrown). A
// deferred operation is awaited in place; use_awaitable would wrap each in a coroutine of its own,
// a heap-allocated frame per read, write and wait.
constexpr auto kNoThrow = boost::asio::as_tuple(boost::asio::deferred);
// The same as an awaitable, for what needs one: the || and && of awaitable_operators.
constexpr auto kNoThrowAwaitable = boost::asio::as_tuple(boost::asio::use_awaitable_t<Executor>{});

}  // namespace tern::proxy
