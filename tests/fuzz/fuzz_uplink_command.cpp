// Fuzzes the upstream command parser (gateway/uplink/wire_format.cpp parseCommand) and the
// rendering of its answer, as the uplink thread runs them for every message on the command
// topics. The first byte chooses the mode and topic (native `hgj/{site}/cmd`, ThingsBoard gateway
// RPC, ThingsBoard device RPC whose request id is the input's first line); the rest is the
// payload; bit 3 of the first byte turns config push on (the bundle parser of
// gateway/config_push/config_bundle.cpp, with small limits so that the limits are hit). Neither
// may throw: the uplink thread would lose its connection over a hostile message.
// fuzz-iterations: 20000
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/uplink/wire_format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using hgj::uplink::Mode;
  static const hgj::uplink::WireFormat native(Mode::Native, "fuzz-site");
  static const hgj::uplink::WireFormat tb(Mode::ThingsBoard, "fuzz-site");
  static const std::vector<std::string> allowed{"write", "ack_alert", "summary_now"};
  static const std::vector<std::string> only_ack{"ack_alert"};
  static const std::vector<std::string> with_push{"write", "ack_alert", "summary_now",
                                                  "config_push"};
  static const hgj::config_push::BundleLimits limits{4096, 8, 1024};
  if (size < 1) {
    return 0;
  }
  const uint8_t selector = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool thingsboard = (selector & 1) != 0;
  const auto& format = thingsboard ? tb : native;
  std::string topic = "hgj/fuzz-site/cmd";
  if (thingsboard) {
    if ((selector & 2) != 0) {
      topic = "v1/gateway/rpc";
    } else {
      size_t nl = in.find('\n');
      std::string_view id = nl == std::string_view::npos ? in.substr(0, 0) : in.substr(0, nl);
      topic = "v1/devices/me/rpc/request/" + std::string(id);
      if (nl != std::string_view::npos) {
        in.remove_prefix(nl + 1);
      }
    }
  }
  const bool push = (selector & 8) != 0;
  const auto& allow = push ? with_push : (selector & 4) != 0 ? only_ack : allowed;
  try {
    hgj::uplink::ParsedCommand p =
        hgj::uplink::parseCommand(format, topic, in, allow, push ? &limits : nullptr);
    if (p.ok && std::find(allow.begin(), allow.end(), p.method) == allow.end()) {
      std::abort();  // a method outside the allow list must never be accepted
    }
    if (p.ok && in.size() > hgj::uplink::commandByteLimit(push ? &limits : nullptr)) {
      std::abort();
    }
    if (p.ok && p.method == "config_push") {
      // Every accepted bundle is within its limits and names only safe relative paths.
      size_t total = 0;
      if (!push || !p.bundle || p.bundle->files.size() > limits.max_files ||
          p.bundle->files.count("gateway.yaml") == 0) {
        std::abort();
      }
      for (const auto& [name, text] : p.bundle->files) {
        total += text.size();
        if (!hgj::config_push::validBundlePath(name) || name.find("..") == 0 ||
            name.front() == '/' || text.size() > limits.max_file_bytes) {
          std::abort();
        }
      }
      if (total > limits.max_bytes) {
        std::abort();
      }
    }
    std::string out_topic;
    std::string out_payload;
    hgj::uplink::renderCommandResult(format, p, p.ok, p.status, p.ok ? "done" : p.reason,
                                     "fuzz-site:1", 1764252000000, out_topic, out_payload);
  } catch (...) {
    std::abort();
  }
  return 0;
}
