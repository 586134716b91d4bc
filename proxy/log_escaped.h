// The completion of a detached coroutine that logs an exception escaping it, where
// asio::detached would drop it without a word. The data path's coroutines are written not to
// throw (errors are codes); this is the net under them, named by what the coroutine was.
#pragma once

#include <exception>

#include "core/log/logger.h"

namespace tern::proxy {

inline auto LogEscaped(const Logger& log, const char* what) {
  return [&log, what](std::exception_ptr e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      log.Error("a task ended by an exception", {{"task", what}, {"error", x.what()}});
    } catch (...) {
      log.Error("a task ended by an exception", {{"task", what}, {"error", "not a std::exception"}});
    }
  };
}

}  // namespace tern::proxy
