#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace hgj::config_push {

/// Bounds on a pushed bundle (`uplink.config_push.*`): hostile input is refused before anything
/// is written to disk.
struct BundleLimits {
  size_t max_bytes = 1024 * 1024;      ///< the whole command payload
  size_t max_files = 64;
  size_t max_file_bytes = 256 * 1024;  ///< one file
};

/// A versioned set of configuration files as pushed by the platform: `gateway.yaml` and what it
/// includes, by path relative to the bundle's root (`devices.yaml`, `profiles/x.yaml`).
struct ConfigBundle {
  int64_t version = 0;  ///< positive, chosen by the platform; a push must exceed every stored one
  std::string by;       ///< who asked, as the platform says (a claim, kept for the audit)
  std::map<std::string, std::string> files;
};

/// The main file every bundle must hold.
inline constexpr std::string_view kMainFile = "gateway.yaml";

/// A file name a bundle may use: 1..3 segments separated by '/', each 1..64 of
/// `A-Z a-z 0-9 _ - .`, none starting with '.' (no "..", no hidden files), no absolute path.
bool validBundlePath(std::string_view name);

/// Reads `version`, `by` and `files` from a config_push command's arguments (the native message,
/// or ThingsBoard's `params`). Returns the bundle or why it is refused. Pure; never throws.
std::variant<ConfigBundle, std::string> parseBundle(const nlohmann::json& args,
                                                    const BundleLimits& limits);

} // namespace hgj::config_push
