#pragma once

#include <string>

#include "core/config_node.h"

namespace hgj::core {

/// A `tls:` section of an MQTT connection (`mqtt.tls` to the local broker, `uplink.tls`
/// upstream): one shape and one parser for both, so the two cannot drift apart.
struct TlsConfig {
  std::string ca_file;    ///< PEM CA bundle the broker's certificate must chain to; empty: the
                          ///< system's trust store
  std::string cert_file;  ///< optional client certificate (PEM)
  std::string key_file;   ///< its private key (PEM); may be omitted when in cert_file
  std::string key_password;
  bool verify = true;  ///< verify the broker's certificate and host name; off only for labs
};

/// Parses a `tls:` node (nothing when it is absent). Files are taken relative to the file that
/// names them and must be readable; a client key needs its certificate. Problems go to the
/// node's diagnostics as FILE:LINE.
void parseTlsConfig(const ConfigNode& node, TlsConfig& tls);

} // namespace hgj::core
