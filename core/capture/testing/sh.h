// The asserting shell helper for gtest tests that set up namespaces and links.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/capture/testing/netns_traffic.h"

namespace tern::nettest {

// Runs `cmd`; a non-zero exit fails the current test with the command's output.
inline bool Sh(const std::string& cmd) {
  int rc = 0;
  std::string out = RunShell(cmd, &rc);
  if (rc != 0) ADD_FAILURE() << cmd << " exited " << rc << "\n" << out;
  return rc == 0;
}

}  // namespace tern::nettest
