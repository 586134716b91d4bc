// TERN_CHECK: the "cannot happen" tier (Envoy's RELEASE_ASSERT). Errors caused by traffic or
// input are handled as values; a broken invariant of our own ends the process at once, loudly,
// with where and why, in every build type: a proxy limping on with a corrupt state (a null
// connection handed back to a pool) does more harm than a restart.
#pragma once

#include <cstdio>
#include <cstdlib>

#define TERN_CHECK(condition, why)                                                                  \
  do {                                                                                              \
    if (!(condition)) [[unlikely]] {                                                                \
      std::fprintf(stderr, "tern: invariant broken at %s:%d: %s (%s)\n", __FILE__, __LINE__, why, \
                   #condition);                                                                     \
      std::abort();                                                                                 \
    }                                                                                               \
  } while (false)
