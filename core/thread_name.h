#pragma once

#include <pthread.h>

#include <string>

namespace hgj::core {

/// Names the calling thread as `top -H`, `ps -L`, perf and gdb show it. Linux keeps 15
/// characters; longer names are cut rather than refused. Every thread the gateway starts calls
/// this first, so a per-thread CPU or wake-up figure (docs/benchmarks.md) says whose it is.
inline void nameThisThread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

} // namespace hgj::core
