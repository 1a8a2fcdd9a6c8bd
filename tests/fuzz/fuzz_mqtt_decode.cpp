// Fuzzes the MQTT payload decoding of every built-in profile: the first line of the input is the
// topic, the rest the payload.
#include <cstdint>
#include <string>
#include <string_view>

#include "drivers/profiles/mqtt_decoder.h"
#include "gateway/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static hgj::config::GatewayConfig cfg = [] {
    hgj::core::Diagnostics diag;
    return hgj::config::loadConfig(std::string(HGJ_SOURCE_DIR) + "/conf/gateway.yaml", {}, diag);
  }();
  static hgj::drivers::profiles::MqttDecoder decoder(*cfg.compound, 64 * 1024, 256);
  static std::vector<hgj::model::Reading> out;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  size_t nl = in.find('\n');
  std::string_view topic = nl == std::string_view::npos ? "compound/parking/P-B1-0001/state"
                                                        : in.substr(0, nl);
  std::string_view payload = nl == std::string_view::npos ? in : in.substr(nl + 1);
  out.clear();
  decoder.decode(topic, payload, 1'800'000'000'000, out);
  return 0;
}
