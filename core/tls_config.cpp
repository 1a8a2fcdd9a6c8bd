#include "core/tls_config.h"

#include <cerrno>
#include <cstring>
#include <fstream>

namespace hgj::core {

namespace {

void checkReadable(const ConfigNode& node, const char* key, const std::string& path) {
  if (!path.empty() && !std::ifstream(path)) {
    node.errorAt(key, "cannot read \"" + path + "\": " + std::strerror(errno));
  }
}

} // namespace

void parseTlsConfig(const ConfigNode& node, TlsConfig& tls) {
  if (!node.defined()) {
    return;
  }
  node.allowKeys({"ca_file", "cert_file", "key_file", "key_password", "key_password_file",
                  "verify"});
  tls.ca_file = node.filePath("ca_file", "");
  tls.cert_file = node.filePath("cert_file", "");
  tls.key_file = node.filePath("key_file", "");
  tls.key_password = node.secret("key_password");
  tls.verify = node.boolean("verify", true);
  checkReadable(node, "ca_file", tls.ca_file);
  checkReadable(node, "cert_file", tls.cert_file);
  checkReadable(node, "key_file", tls.key_file);
  if (!tls.key_file.empty() && tls.cert_file.empty()) {
    node.errorAt("key_file", "a client key needs tls.cert_file too");
  }
}

} // namespace hgj::core
