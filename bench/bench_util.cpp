#include "bench_util.h"

#include <fstream>
#include <string>
#include <thread>

namespace tinyemo::bench {

nlohmann::json machine_info() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown";
  bool avx512 = false, bf16 = false;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0 && model == "unknown") model = line.substr(line.find(':') + 2);
    if (line.rfind("flags", 0) == 0) {
      avx512 = line.find(" avx512f") != std::string::npos;
      bf16 = line.find(" avx512_bf16") != std::string::npos;
    }
  }
  return {{"cpu", model},
          {"cores", std::thread::hardware_concurrency()},
          {"avx512f", avx512},
          {"avx512_bf16", bf16},
          {"compiler", __VERSION__}};
}

}  // namespace tinyemo::bench
