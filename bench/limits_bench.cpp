// This machine's measured limits on 1 and 2 threads: the denominators every
// other benchmark's "fraction of the limit" uses. Prints one JSON object.
#include <cstdio>

#include "bench_util.h"

int main() {
  using namespace tinyemo;
  nlohmann::json limits = nlohmann::json::array();
  for (int threads : {1, 2}) limits.push_back(bench::machine_limits(threads));
  const nlohmann::json out = {{"benchmark", "limits"}, {"machine", bench::machine_info()}, {"limits", limits}};
  std::puts(out.dump(2).c_str());
}
