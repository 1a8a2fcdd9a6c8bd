#pragma once

#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "gateway/pipeline/commands.h"
#include "gateway/pipeline/read_model.h"
#include "model/compound.h"

struct sqlite3;

/// A hand-built compound and live state for API tests and the browser fixture (no config loader,
/// no pipeline): parking levels B1/B2 in zones A-D, EV piles linked to spaces, MQTT e-bike sheds
/// with ports, one CO sensor.
namespace hgj::api::testing {

struct CompoundShape {
  int spaces_per_level = 40; ///< a multiple of 4 (zones A-D)
  int ev_piles = 6;
  int sheds = 3;
  int ports_per_shed = 10;
};

std::shared_ptr<model::Compound> makeCompound(const CompoundShape& shape = {});

/// The live state that the pipeline would own, mutated by the test thread, published as
/// snapshots the way the pipeline does (levels and zones counted with api::spaceState).
class LiveState {
public:
  LiveState(std::shared_ptr<const model::Compound> compound, int64_t now_ms);

  /// occupied: true/false = a good reading; nullopt = the sensor went offline (unknown).
  void setSpace(const std::string& id, std::optional<bool> occupied);
  void setPoint(const std::string& id, const std::string& point, model::Value value,
                model::Quality quality = model::Quality::Good);
  void setOnline(const std::string& id, bool online);
  void setSafetyCut(const std::string& id, bool cut);
  void setNow(int64_t now_ms) { now_ms_ = now_ms; }
  /// Every device online with plausible values: spaces alternate free/occupied, a few unknown.
  void fillDefaults();

  /// Publishes a snapshot (version + 1); also pushes a "space" event for each space changed since
  /// the last publish.
  void publish(pipeline::ReadModel& rm);

  const model::Compound& compound() const { return *compound_; }

private:
  pipeline::PointView* point(const std::string& id, const std::string& name);

  std::shared_ptr<const model::Compound> compound_;
  std::vector<pipeline::DeviceView> devices_;
  std::vector<std::string> changed_spaces_;
  uint64_t version_ = 0;
  int64_t now_ms_;
};

/// Creates the alerts table (the schema the alerts stage owns) in `db_path`.
void createAlertsTable(const std::string& db_path);
/// Inserts an alert and returns its id.
int64_t insertAlert(const std::string& db_path, const std::string& rule, const std::string& device,
                    const std::string& grid, const std::string& severity, const std::string& state,
                    const std::string& message, const std::string& value_json, int64_t raised_at);

/// Stands in for the pipeline's command queue: acks update the alerts table (as the alerts stage
/// does) and push an "alert" event; writes are recorded and succeed. `hang` makes submissions
/// never complete (timeout tests). Thread-safe.
class TestCommandSink final : public pipeline::CommandSink {
public:
  TestCommandSink(std::string db_path, pipeline::ReadModel* events, int64_t now_ms)
      : db_path_(std::move(db_path)), events_(events), now_ms_(now_ms) {}
  std::future<pipeline::CommandResult> submit(pipeline::Command command) override;

  void setHang(bool hang);
  std::vector<pipeline::Command> received() const;

private:
  std::string db_path_;
  pipeline::ReadModel* events_;
  int64_t now_ms_;
  mutable std::mutex mu_;
  bool hang_ = false;                                       // guarded by mu_
  std::vector<pipeline::Command> received_;                 // guarded by mu_
  std::vector<std::promise<pipeline::CommandResult>> hung_; // guarded by mu_
};

} // namespace hgj::api::testing
