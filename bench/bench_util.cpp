#include "bench_util.h"

#include <algorithm>
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

nlohmann::json machine_limits(int threads) {
  return {{"threads", threads},
          {"peak_f32_gflops", peak_gflops(PeakKind::F32Fma, threads)},
          {"peak_bf16_dot_gflops", peak_gflops(PeakKind::Bf16Dot, threads)},
          {"peak_int8_dot_gops", peak_gflops(PeakKind::Int8Dot, threads)},
          {"read_bandwidth_gb_s", measure_read_bandwidth(threads)},
          {"copy_bandwidth_gb_s", measure_copy_bandwidth(threads)}};
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

}  // namespace tinyemo::bench
