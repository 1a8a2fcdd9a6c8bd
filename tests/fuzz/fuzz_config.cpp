// Fuzzes the YAML config loading: the input is a devices file loaded with the example's
// profiles and grids.
// fuzz-iterations: 400
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <unistd.h>
#include <string>

#include "gateway/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("hgj-fuzz-config-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::string src = std::string(HGJ_SOURCE_DIR) + "/conf/";
    std::ofstream(d / "gateway.yaml")
        << "site: {id: fuzz}\ninclude:\n  grids: " << src << "grids.yaml\n  devices: devices.yaml\n"
        << "  rules: " << src << "rules.yaml\n  alerts: " << src << "alerts.yaml\n"
        << "  profiles: " << src << "profiles\n";
    return d.string();
  }();
  {
    std::ofstream out(dir + "/devices.yaml", std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  hgj::core::Diagnostics diag;
  try {
    hgj::config::loadConfig(dir + "/gateway.yaml", {}, diag);
  } catch (const std::exception&) {
    // Loading reports problems through diag; an escaping exception is a bug the fuzzer shows.
    std::abort();
  }
  return 0;
}
