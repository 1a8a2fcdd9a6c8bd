#include <cstdio>

int main() {
  std::puts("hgj-sim: not built yet");
  return 1;
}
