// Structured logging: one JSON object per line, written with a single write(2) so lines from
// several threads never interleave. A Logger is created by a binary's main() and handed to the
// components that log; core/ keeps no global logger.
#pragma once

#include <atomic>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace tern {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

// "debug" | "info" | "warn" | "warning" | "error" | "off"; false for anything else.
bool ParseLogLevel(std::string_view text, LogLevel* out);

class Logger {
 public:
  // Writes to the file descriptor `fd` (not owned), 2 = stderr.
  explicit Logger(int fd = 2, LogLevel level = LogLevel::kInfo) : fd_(fd), level_(level) {}

  void set_level(LogLevel level) { level_.store(level, std::memory_order_relaxed); }
  bool Enabled(LogLevel level) const { return level >= level_.load(std::memory_order_relaxed); }

  // Emits {"ts":..., "level":..., "msg":..., <fields>}. `fields` must be a JSON object (or null).
  void Log(LogLevel level, std::string_view msg, const nlohmann::json& fields) const;
  void Info(std::string_view msg, const nlohmann::json& fields) const { Log(LogLevel::kInfo, msg, fields); }
  void Warn(std::string_view msg, const nlohmann::json& fields) const { Log(LogLevel::kWarn, msg, fields); }
  void Error(std::string_view msg, const nlohmann::json& fields) const { Log(LogLevel::kError, msg, fields); }

 private:
  int fd_;
  std::atomic<LogLevel> level_;
};

}  // namespace tern
