// Command-line flags, one way for every binary: `--name value` and `--name=value`, `--help`,
// and an unknown flag refused by its name ("unknown flag --bogus"). Each flag writes straight
// into the caller's variable; a value out of its range is refused with the flag's name.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/base/status.h"

namespace tern {

class FlagSet {
 public:
  explicit FlagSet(std::string program) : program_(std::move(program)) {}

  // `name` without the dashes. `help` is one line for the usage text.
  void String(std::string name, std::string* into, std::string help);
  void Int(std::string name, long* into, long min, long max, std::string help);
  // A flag that takes no value (`--name`), or `--name=true|false`.
  void Bool(std::string name, bool* into, std::string help);
  // A flag parsed by the caller: `parse` returns an error message ("" when the value is good).
  void Custom(std::string name, std::function<std::string(std::string_view)> parse, std::string help);

  // Parses argv[1..]. Errors name the flag. `help_wanted` is set (and OK returned) on -h/--help.
  Status Parse(int argc, const char* const* argv, bool* help_wanted = nullptr);
  // Whether the flag was given on the command line (so it beats other sources).
  bool Given(std::string_view name) const;
  std::string Usage() const;

 private:
  struct Flag {
    std::string name, help;
    bool takes_value = true;
    std::function<std::string(std::string_view)> parse;
    bool given = false;
  };
  Flag* Find(std::string_view name);
  std::string program_;
  std::vector<Flag> flags_;
};

}  // namespace tern
