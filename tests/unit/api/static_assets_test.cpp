#include <catch2/catch.hpp>

#include <dirent.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "gateway/api/static_assets.h"
#include "tests/support/test_support.h"

TEST_CASE("api static: embedded dashboard equals gateway/api/static", "[api][static]") {
  std::string dir = std::string(HGJ_SOURCE_DIR) + "/gateway/api/static";
  DIR* d = opendir(dir.c_str());
  REQUIRE(d != nullptr);
  std::set<std::string> names;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') {
      names.insert(e->d_name);
    }
  }
  closedir(d);
  REQUIRE(names.count("index.html") == 1);
  for (const auto& name : names) {
    INFO(name << ": the build embeds gateway/api/static/ (gateway/api/embed_static.sh)");
    std::ifstream in(dir + "/" + name, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    const auto* a = hgj::api::embeddedAsset(name);
    REQUIRE(a != nullptr);
    CHECK(a->body == ss.str());
  }
  std::string embedded = hgj::api::embeddedAssetNames();
  size_t count = embedded.empty() ? 0 : std::count(embedded.begin(), embedded.end(), ' ') + 1;
  CHECK(count == names.size());
}

TEST_CASE("api static: only plain file names are served from a directory", "[api][static]") {
  using hgj::api::safeAssetName;
  CHECK(safeAssetName("app.js"));
  CHECK(safeAssetName("index.html"));
  CHECK_FALSE(safeAssetName("../etc/passwd"));
  CHECK_FALSE(safeAssetName(".env"));
  CHECK_FALSE(safeAssetName("a/b.js"));
  CHECK_FALSE(safeAssetName("a..js"));
  CHECK(hgj::api::contentTypeFor("app.css") == "text/css; charset=utf-8");
  // The vendored chart library's licence is served beside it, readable in a browser.
  CHECK(hgj::api::contentTypeFor("uplot.LICENSE.txt") == "text/plain; charset=utf-8");
}

TEST_CASE("api static: every device type of the shipped profiles has a name in both languages",
          "[api][static]") {
  namespace fs = std::filesystem;
  std::ifstream js(hgj::test::sourcePath("gateway/api/static/app.js"));
  std::stringstream ss;
  ss << js.rdbuf();
  const std::string app = ss.str();
  const size_t zh = app.find("  zh: {");
  const size_t en = app.find("  en: {");
  REQUIRE(zh != std::string::npos);
  REQUIRE(en != std::string::npos);
  const std::string zh_table = app.substr(zh, en - zh);
  const std::string en_table = app.substr(en);
  std::set<std::string> types;
  for (const auto& e : fs::directory_iterator(hgj::test::sourcePath("conf/profiles"))) {
    std::ifstream in(e.path());
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("type:", 0) == 0) {
        std::string t = line.substr(5);
        t.erase(0, t.find_first_not_of(' '));
        t = t.substr(0, t.find_first_of(" #"));
        types.insert(t);
      }
    }
  }
  REQUIRE(types.count("fan") == 1);
  for (const auto& t : types) {
    INFO("device type " << t);
    CHECK(zh_table.find(" " + t + ": '") != std::string::npos);
    CHECK(en_table.find(" " + t + ": '") != std::string::npos);
  }
}
