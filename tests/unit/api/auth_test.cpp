#include <catch2/catch.hpp>

#include "gateway/api/auth.h"

using namespace hgj::api;

TEST_CASE("api auth: bearer tokens are taken from the Authorization header", "[api][auth]") {
  CHECK(bearerToken("Bearer abc") == "abc");
  CHECK(bearerToken("bearer   abc  ") == "abc");
  CHECK(bearerToken("Basic dXNlcjpwYXNz").empty());
  CHECK(bearerToken("").empty());
  CHECK(tokenEquals("same-token", "same-token"));
  CHECK_FALSE(tokenEquals("same-token", "same-tokeN"));
  CHECK_FALSE(tokenEquals("same", "same-token"));
}

TEST_CASE("api auth: host headers are compared without their port", "[api][auth]") {
  CHECK(hostWithoutPort("127.0.0.1:8080") == "127.0.0.1");
  CHECK(hostWithoutPort("[::1]:8080") == "::1");
  CHECK(hostWithoutPort("LocalHost") == "localhost");
  HttpConfig loop;
  AccessPolicy p(loop);
  CHECK(p.hostAllowed("localhost:8080"));
  CHECK(p.hostAllowed("127.0.0.1:1234"));
  CHECK(p.hostAllowed("[::1]:8080"));
  CHECK_FALSE(p.hostAllowed("evil.example.com"));
  CHECK_FALSE(p.hostAllowed(""));
  HttpConfig lan;
  lan.bind = "0.0.0.0";
  lan.viewer_token = "viewer-0123456789";
  CHECK(AccessPolicy(lan).hostAllowed("gw.local"));
  lan.allowed_hosts = {"gw.local"};
  CHECK(AccessPolicy(lan).hostAllowed("gw.local:8080"));
  CHECK_FALSE(AccessPolicy(lan).hostAllowed("other.local"));
}

TEST_CASE("api auth: viewers read, operators act", "[api][auth]") {
  HttpConfig c;
  c.viewer_token = "viewer-0123456789";
  c.operator_token = "operator-0123456789";
  AccessPolicy p(c);
  CHECK(p.check("", false) == Access::Unauthorized);
  CHECK(p.check("wrong-token-000000", false) == Access::Unauthorized);
  CHECK(p.check("viewer-0123456789", false) == Access::Allow);
  CHECK(p.check("operator-0123456789", false) == Access::Allow);
  CHECK(p.check("viewer-0123456789", true) == Access::Forbidden);
  CHECK(p.check("operator-0123456789", true) == Access::Allow);
  CHECK(p.check("", true) == Access::Unauthorized);

  // No token configured (a loopback bind): local clients may look, never act.
  HttpConfig open;
  CHECK(AccessPolicy(open).check("", false) == Access::Allow);
  CHECK(AccessPolicy(open).check("", true) == Access::Forbidden);
  CHECK(AccessPolicy(open).check("anything-0123456789", true) == Access::Forbidden);

  // A viewer token alone: reads need it, nobody acts.
  HttpConfig viewer_only;
  viewer_only.viewer_token = "viewer-0123456789";
  CHECK(AccessPolicy(viewer_only).check("viewer-0123456789", true) == Access::Forbidden);
  CHECK(AccessPolicy(viewer_only).check("", false) == Access::Unauthorized);

  HttpConfig op_only;
  op_only.operator_token = "operator-0123456789";
  AccessPolicy q(op_only);
  CHECK(q.check("", false) == Access::Allow);
  CHECK(q.check("", true) == Access::Unauthorized);
  CHECK(q.check("operator-0123456789", true) == Access::Allow);
}

TEST_CASE("api auth: only the own origin and listed origins may post", "[api][auth]") {
  HttpConfig c;
  c.cors_origins = {"https://pm.example.com"};
  AccessPolicy p(c);
  CHECK(p.originAllowed("http://127.0.0.1:8080", "127.0.0.1:8080"));
  CHECK(p.originAllowed("https://pm.example.com", "127.0.0.1:8080"));
  CHECK_FALSE(p.originAllowed("https://evil.example.com", "127.0.0.1:8080"));
  CHECK_FALSE(p.originAllowed("http://127.0.0.1:9999", "127.0.0.1:8080"));
  CHECK(p.corsListed("https://pm.example.com"));
  CHECK_FALSE(p.corsListed("null"));
}
