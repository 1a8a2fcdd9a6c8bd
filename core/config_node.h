#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <yaml-cpp/yaml.h>

namespace hgj::core {

/// Where a config value came from: file and 1-based line.
struct SourceLocation {
  std::string file;
  int line = 0;
};

/// One problem found in the config, printed as `FILE:LINE: key.path: message`.
struct ConfigProblem {
  SourceLocation where;
  std::string key_path;
  std::string message;
  std::string format() const;
};

/// Where a secret of the config was read from: the config file that holds it inline, or the
/// file named by its `*_file` key. `check` warns when such a file is readable by others.
struct SecretSource {
  SourceLocation where;  ///< the key in the config
  std::string key_path;
  std::string file;      ///< the file holding the secret's value
  bool inline_value = false;
};

/// Collects every problem of a config load, so `check` reports all of them at once instead of
/// stopping at the first.
class Diagnostics {
public:
  void error(const SourceLocation& where, std::string key_path, std::string message);
  /// Records where a secret came from (ConfigNode::secret() calls this).
  void noteSecret(SecretSource source) { secrets_.push_back(std::move(source)); }
  const std::vector<SecretSource>& secrets() const { return secrets_; }
  bool ok() const { return problems_.empty(); }
  const std::vector<ConfigProblem>& problems() const { return problems_; }
  std::vector<ConfigProblem>& mutableProblems() { return problems_; }
  /// Problems sorted by file and line, one per line.
  std::string format() const;

private:
  std::vector<ConfigProblem> problems_;
  std::vector<SecretSource> secrets_;
};

/// One warning per secret whose file (the config holding it inline, or its `*_file`) others
/// can read (mode o+r): `FILE:LINE: key.path: warning: ...`, saying which file and what to do.
/// Never contains the secret. Files that do not exist (e.g. `--set`) are skipped.
std::vector<std::string> exposedSecretWarnings(const Diagnostics& diag);

/// Thrown by loaders when a config cannot be used; carries every problem found.
class ConfigError : public std::runtime_error {
public:
  explicit ConfigError(Diagnostics diag);
  const Diagnostics& diagnostics() const { return diag_; }

private:
  Diagnostics diag_;
};

/// The closest candidate within a small edit distance, for "did you mean".
std::optional<std::string> closestMatch(std::string_view word,
                                        const std::vector<std::string>& candidates);

/// A YAML node that knows its file, its key path and where to report problems. Typed getters
/// validate, report a problem (with the expected and the actual value) and return the default on
/// error, so that one load finds every problem. Single-threaded (config loading only).
///
///   Node http = root.child("http");
///   http.allowKeys({"bind", "port"});
///   int port = http.integer("port", 8080, 1, 65535);
class ConfigNode {
public:
  ConfigNode(YAML::Node node, std::shared_ptr<const std::string> file, std::string path,
             Diagnostics* diag);

  bool defined() const { return node_.IsDefined() && !node_.IsNull(); }
  bool isMap() const { return node_.IsMap(); }
  bool isSeq() const { return node_.IsSequence(); }
  bool isScalar() const { return node_.IsScalar(); }
  const std::string& path() const { return path_; }
  const std::string& file() const { return *file_; }
  SourceLocation location() const;
  const YAML::Node& yaml() const { return node_; }
  Diagnostics& diag() const { return *diag_; }

  /// Reports a problem at this node.
  void error(const std::string& message) const;
  /// Reports a problem at child `key` (at this node when the key is absent).
  void errorAt(std::string_view key, const std::string& message) const;

  /// Requires a mapping (reports otherwise and returns false) whose keys are all in `allowed`;
  /// each unknown key is reported with a "did you mean".
  bool allowKeys(std::initializer_list<std::string_view> allowed) const;
  bool allowKeys(const std::vector<std::string>& allowed) const;
  bool requireMap() const;
  bool requireSeq() const;

  /// The child at `key` (undefined when absent; its path is still `path.key`).
  ConfigNode child(std::string_view key) const;
  bool has(std::string_view key) const;
  /// Items of a sequence, with paths `path[i]`.
  std::vector<ConfigNode> items() const;
  /// Entries of a mapping in file order, with paths `path.key`.
  std::vector<std::pair<std::string, ConfigNode>> entries() const;

  // Typed access to a child. `required` variants report a missing key.
  std::string str(std::string_view key, const std::string& def) const;
  std::string requiredStr(std::string_view key) const;
  /// One of `choices`.
  std::string choice(std::string_view key, const std::string& def,
                     std::initializer_list<std::string_view> choices) const;
  /// The same with a list built at run time (the rule families' kinds).
  std::string choice(std::string_view key, const std::string& def,
                     const std::vector<std::string>& choices) const;
  bool boolean(std::string_view key, bool def) const;
  int64_t integer(std::string_view key, int64_t def, int64_t min, int64_t max) const;
  double number(std::string_view key, double def, double min, double max) const;
  /// "200ms", "10s", "15m", "8h", "7d" or a plain number of seconds.
  std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds def,
                                     std::chrono::milliseconds min = std::chrono::milliseconds(0),
                                     std::chrono::milliseconds max = std::chrono::hours(24 *
                                                                                        3650)) const;
  /// A secret (password, token, signing key): given inline as `key`, or as `key_file`, the path
  /// of a file holding it (relative paths are resolved against this config file's folder;
  /// surrounding white space is trimmed). Setting both, an unreadable or an empty file is
  /// reported; the secret's value never appears in a message. `from_file` (optional) tells
  /// which form was used. The caller lists `key_file` in allowKeys().
  std::string secret(std::string_view key, bool* from_file = nullptr) const;
  /// A file path: relative paths are resolved against this config file's folder (never the
  /// working directory), and the result is absolute. An empty value stays empty.
  std::string filePath(std::string_view key, const std::string& def) const;
  /// A list of strings (a single scalar is accepted as a list of one).
  std::vector<std::string> strList(std::string_view key) const;

  // The same conversions on this node's own scalar.
  std::optional<std::string> asStr() const;
  std::optional<double> asNumber() const;
  std::optional<bool> asBool() const;

private:
  YAML::Node node_;
  std::shared_ptr<const std::string> file_;
  std::string path_;
  Diagnostics* diag_;
};

/// Parses a duration text ("500ms", "10s", "15m", "8h", "7d", "30" = seconds).
std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

/// Loads a YAML file. On a syntax error reports `FILE:LINE: (syntax): ...` and returns nullopt.
std::optional<ConfigNode> loadYamlFile(const std::string& path, Diagnostics& diag);
/// Parses YAML text that came from `label` (tests, --set values).
std::optional<ConfigNode> loadYamlText(const std::string& text, const std::string& label,
                                       Diagnostics& diag);

} // namespace hgj::core
