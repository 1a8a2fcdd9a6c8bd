#pragma once

#include <cstdint>
#include <string>
#include <vector>

/// Small helpers shared by the benchmark programs: clocks, CPU time, option parsing and the
/// loopback-only guard. Everything here is single-threaded unless said otherwise.
namespace hgj::bench {

/// Monotonic seconds (steady clock), for spans and deadlines.
double monoSeconds();
/// Unix time in whole milliseconds (what devices put in `ts`).
int64_t wallMsInt();
/// Unix time in fractional milliseconds (arrival stamps).
double wallMsFrac();
/// User + system CPU seconds of the whole process (every thread), from getrusage.
double processCpuSeconds();

/// Exits with status 2 unless host is a loopback address: the benchmark never targets anything
/// but this machine.
void requireLoopback(const std::string& host);

/// Parses "--name value" / "--name=value" / "--flag" options. Unknown options are fatal (exit 2)
/// so that a typo never silently runs an unbounded or wrong load.
class Options {
public:
  Options(int argc, char** argv, std::vector<std::string> known_flags,
          std::vector<std::string> known_values, const char* usage);

  bool flag(const std::string& name) const;
  std::string str(const std::string& name, const std::string& dflt) const;
  long long integer(const std::string& name, long long dflt) const;
  double real(const std::string& name, double dflt) const;

private:
  std::vector<std::pair<std::string, std::string>> values_;
  std::vector<std::string> flags_;
  const char* usage_;
};

/// Writes text to path (truncating); used for the ready files the orchestrator waits on.
void touchFile(const std::string& path, const std::string& text);

/// JSON string escaping for the one-line reports.
std::string jsonEscape(const std::string& s);

} // namespace hgj::bench
