#pragma once

#include "gateway/api/api_context.h"
#include "gateway/api/http_message.h"

/// The API's handlers, one file per resource. Each answers one route (routes.cpp) on the thread
/// the route names: `Request::params` holds the pieces of the path the route matched. Handlers
/// validate every client-chosen value and answer errors as JSON; they never throw on bad input.
namespace hgj::api {

// state_handlers.cpp: views of the live snapshot (worker threads).
void getParking(ApiContext& ctx, const Request& req, Response& res);
void getSpaces(ApiContext& ctx, const Request& req, Response& res);
void getDevices(ApiContext& ctx, const Request& req, Response& res);
void getDevice(ApiContext& ctx, const Request& req, Response& res);
void getEv(ApiContext& ctx, const Request& req, Response& res);
void getEbike(ApiContext& ctx, const Request& req, Response& res);

// alert_handlers.cpp: the alerts table and acks (worker threads; acks wait for the pipeline).
void getAlerts(ApiContext& ctx, const Request& req, Response& res);
void postAck(ApiContext& ctx, const Request& req, Response& res);

// history_handlers.cpp: the history tables (worker threads; own read connections): occupancy
// per scope and step, day metrics (energy, sessions, alerts), JSON or CSV.
void getHistoryOccupancy(ApiContext& ctx, const Request& req, Response& res);
void getHistoryDays(ApiContext& ctx, const Request& req, Response& res);
void getHistoryScopes(ApiContext& ctx, const Request& req, Response& res);

// point_handlers.cpp: operator writes to device points (worker threads; wait for the pipeline).
void postWrite(ApiContext& ctx, const Request& req, Response& res);

// config_handlers.cpp: remote configuration (worker threads): the stored bundles and their
// steps, and an operator's rollback to the previous good one (docs/remote-config.md).
void getConfigVersions(ApiContext& ctx, const Request& req, Response& res);
void postConfigRollback(ApiContext& ctx, const Request& req, Response& res);

// system_handlers.cpp: /healthz and the dashboard files (network thread: quick, never block),
// /metrics (worker thread: scrape callbacks may read the database).
void getHealth(ApiContext& ctx, const Request& req, Response& res);
void getMetrics(ApiContext& ctx, const Request& req, Response& res);
void getStatic(ApiContext& ctx, const Request& req, Response& res);

} // namespace hgj::api
