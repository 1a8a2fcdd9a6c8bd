#pragma once

// Paho's TLS options from a core::TlsConfig: one place for the local broker's client
// (paho_ingest.cpp) and the uplink (gateway/uplink/uplink.cpp).
#include <mqtt/ssl_options.h>

#include "core/tls_config.h"

namespace hgj::drivers::mqtt {

inline ::mqtt::ssl_options pahoSslOptions(const core::TlsConfig& tls) {
  ::mqtt::ssl_options ssl;
  if (!tls.ca_file.empty()) {
    ssl.set_trust_store(tls.ca_file);
  }
  if (!tls.cert_file.empty()) {
    ssl.set_key_store(tls.cert_file);
  }
  if (!tls.key_file.empty()) {
    ssl.set_private_key(tls.key_file);
  }
  if (!tls.key_password.empty()) {
    ssl.set_private_key_password(tls.key_password);
  }
  ssl.set_enable_server_cert_auth(tls.verify);
  ssl.set_verify(tls.verify);
  return ssl;
}

} // namespace hgj::drivers::mqtt
