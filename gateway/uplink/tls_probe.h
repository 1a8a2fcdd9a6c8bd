#pragma once

#include <chrono>
#include <string>

#include "gateway/uplink/uplink_config.h"

namespace hgj::uplink {

/// Why a TLS connection to `url` (ssl:// or mqtts://, default port 8883) fails, asked with
/// OpenSSL alone: "certificate verify failed: <X509 reason>", the TLS alert or library error,
/// "tcp: <reason>", or "" when the handshake succeeds (the failure was above TLS).
///
/// Paho C++ 1.2.0 (Debian 12) cannot report it safely: `ssl_options::set_error_handler` hands
/// the C library a pointer to the options object, which `async_client::connect` takes by value
/// and destroys before the handshake runs, so the callback reads a dead stack frame
/// (eclipse-paho/paho.mqtt.cpp issue 325; ASan shows stack-use-after-scope). This probe runs
/// only after a failed TLS connect, on the caller's thread, bounded by `timeout` in total.
std::string probeTls(const std::string& url, const TlsConfig& tls,
                     std::chrono::milliseconds timeout);

} // namespace hgj::uplink
