#pragma once

#include <cstdint>
#include <string_view>

namespace hgj::model {

/// What an EV charging pile is doing, as the dashboard, the API and the upstream summary count
/// it. The one place that reads a pile's `state` point: profiles report OCPP 1.6 status names,
/// but a pile may also say an IEC 61851 letter (A-F) or a vendor word; case does not matter.
///
/// - Charging: a session is in progress, the car on the pile's space is using it: OCPP
///   Charging, SuspendedEV, SuspendedEVSE, Finishing; IEC C (charging) and D (charging with
///   ventilation). The shipped fuel-car rule (conf/rules.yaml) lists the same OCPP names.
/// - Faulted: OCPP Faulted and Unavailable, IEC E and F, "fault", "error".
/// - Idle: any other state (Available, Preparing, Reserved, IEC A and B, vendor words).
/// - Unknown: no state reported yet (an empty text).
/// A pile that is offline is the caller's to say: this looks at the state only.
enum class PileStatus : uint8_t { Unknown, Idle, Charging, Faulted };

PileStatus pileStatus(std::string_view state);

/// "unknown" | "idle" | "charging" | "faulted" (the API's spelling).
const char* pileStatusName(PileStatus s);

/// Whether a car on the pile's linked space is being served. An occupied space whose pile is
/// not is "blocked" (a fuel car, or an EV that never plugs in).
inline bool pileInUse(PileStatus s) { return s == PileStatus::Charging; }

} // namespace hgj::model
