// The cost of refusing non-finite weights on load (core/finite.h): the scan
// of a large tensor in each stored dtype against the machine's read
// bandwidth measured in the same run, and, for model folders given on the
// command line, the scan of every tensor against the whole load.
//
//   finite_scan_bench [--threads N] [--mb MB] [--clip DIR]... [--lm DIR]...
//
// Prints one JSON object.
#include <cstdio>
#include <cstring>
#include <string>

#include "bench_util.h"
#include "core/finite.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "models/clip/vision_model.h"
#include "models/lm/model.h"

int main(int argc, char** argv) {
  using namespace tinyemo;
  int threads = 2;
  int64_t mb = 256;
  std::vector<std::string> clips, lms;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    if (flag == "--mb") mb = std::atoll(argv[i + 1]);
    if (flag == "--clip") clips.push_back(argv[i + 1]);
    if (flag == "--lm") lms.push_back(argv[i + 1]);
  }
  set_num_threads(threads);
  nlohmann::json out = {{"benchmark", "finite_scan"}, {"machine", bench::machine_info()}, {"threads", threads}};
  const double read_gb_s = measure_read_bandwidth(threads);
  out["read_bandwidth_gb_s"] = read_gb_s;

  nlohmann::json dtypes = nlohmann::json::array();
  for (const DType d : {DType::F32, DType::F16, DType::BF16, DType::Q8_0}) {
    const int64_t elements = (mb << 20) / static_cast<int64_t>(d == DType::F32 ? 4 : 2) / 32 * 32;
    Tensor t = Tensor::zeros(DType::F32, {elements / 32, 32}).to(d);  // every page touched
    int64_t found = 0;
    const double s = bench::median_seconds(5, [&] { found += first_non_finite(t); });
    const double gb_s = static_cast<double>(t.nbytes()) / s / 1e9;
    dtypes.push_back({{"dtype", dtype_name(d)},
                      {"elements", elements},
                      {"bytes", t.nbytes()},
                      {"seconds", s},
                      {"gb_s", gb_s},
                      {"fraction_of_read_bandwidth", gb_s / read_gb_s},
                      {"all_finite", found == -6}});
  }
  out["tensors"] = dtypes;

  // Model folders: the whole load (which includes the scan) against the scan
  // of the same tensors, both with the files already in the page cache.
  nlohmann::json models = nlohmann::json::array();
  auto time_model = [&](const std::string& dir, bool clip) {
    const double load = bench::median_seconds(3, [&] {
      if (clip) {
        clip::VisionModel::load(dir);
      } else {
        lm::LmModel::load(dir);
      }
    });
    std::vector<Tensor> tensors;
    int64_t bytes = 0;
    for (const auto& name : {"model.safetensors"}) {
      const auto st = SafetensorsFile::open(std::filesystem::path(dir) / name);
      for (const auto& e : st.entries()) {
        tensors.push_back(st.get(e.name));
        bytes += static_cast<int64_t>(tensors.back().nbytes());
      }
    }
    const double scan = bench::median_seconds(5, [&] {
      for (const Tensor& t : tensors) first_non_finite(t);
    });
    models.push_back({{"model", dir},
                      {"kind", clip ? "clip" : "lm"},
                      {"weight_bytes", bytes},
                      {"load_seconds", load},
                      {"scan_seconds", scan},
                      {"scan_fraction_of_load", scan / load}});
  };
  for (const auto& d : clips) time_model(d, true);
  for (const auto& d : lms) time_model(d, false);
  out["models"] = models;
  std::puts(out.dump(2).c_str());
}
