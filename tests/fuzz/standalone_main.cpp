// Runs a fuzz target without libFuzzer: every file of the corpus directory given as argument,
// then a bounded number of random mutations of them (deterministic seed), so ctest exercises the
// target on every build. A crash or a sanitizer report fails the test.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  std::vector<std::string> corpus;
  int iterations = 20000;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--iterations" && i + 1 < argc) {
      iterations = std::atoi(argv[++i]);
      continue;
    }
    std::filesystem::path p(argv[i]);
    std::vector<std::filesystem::path> files;
    if (std::filesystem::is_directory(p)) {
      for (const auto& e : std::filesystem::directory_iterator(p)) {
        files.push_back(e.path());
      }
    } else {
      files.push_back(p);
    }
    for (const auto& f : files) {
      std::ifstream in(f, std::ios::binary);
      std::stringstream ss;
      ss << in.rdbuf();
      corpus.push_back(ss.str());
    }
  }
  if (corpus.empty()) {
    corpus.emplace_back("{}");
  }
  for (const auto& c : corpus) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(c.data()), c.size());
  }
  std::mt19937 rng(12345);
  for (int i = 0; i < iterations; ++i) {
    std::string s = corpus[rng() % corpus.size()];
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits; ++e) {
      size_t pos = s.empty() ? 0 : rng() % s.size();
      switch (rng() % 5) {
      case 0:
        if (!s.empty()) {
          s[pos] = static_cast<char>(rng() % 256);
        }
        break;
      case 1:
        s.insert(pos, 1, "{}[]\",:0123456789.eE-+tfn\\ "[rng() % 28]);
        break;
      case 2:
        if (!s.empty()) {
          s.erase(pos, 1 + rng() % 4);
        }
        break;
      case 3:
        s.insert(pos, s.substr(0, std::min<size_t>(s.size(), rng() % 16)));
        break;
      default:
        s = s.substr(0, pos);
        break;
      }
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  }
  std::printf("%zu corpus inputs and %d mutations ran without a crash\n", corpus.size(),
              iterations);
  return 0;
}
