// Byte-level BPE encoding speed (GPT-2's tokenizer, Phi-2's base) on a few
// hundred KB of English prose. The comparison: tinyemo's encoder with its
// per-piece cache (first pass over the text, filling the cache, and a second
// pass), against the same encoder with the cache off (every piece merged: the
// plain algorithm), and against the GPT-2 pre-tokenizer pass alone (the work
// no cache removes: the floor of this design). Also reports loading time.
// Times are the encoding thread's CPU seconds (see thread_cpu_seconds).
// Usage (from the repository root):
//   tokenizer_bench [TOKENIZER_JSON [TEXT_FILE...]]
// defaults: ../shared/fixtures/gpt2-bpe/tokenizer.json and the Debian licence
// texts in /usr/share/common-licenses. Prints one JSON object.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_util.h"
#include "io/file.h"
#include "models/lm/bpe_pretokenizer.h"
#include "models/lm/bpe_tokenizer.h"

using namespace tinyemo;

namespace {

// CPU seconds of this thread: on a shared machine it counts only the time the
// encoder ran (equal to wall time when the machine is idle; encoding is
// single-threaded).
double thread_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// Median thread-CPU seconds of `reps` runs after a warm-up.
template <class Fn>
double median_cpu_seconds(int reps, Fn&& fn) {
  return bench::median_seconds(reps, fn, thread_cpu_seconds);
}

std::string read_texts(const std::vector<std::filesystem::path>& files) {
  std::string text;
  for (const auto& f : files) text += read_file(f) + "\n";
  return text;
}

std::vector<std::filesystem::path> default_texts() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses")) {
    if (e.is_regular_file() && !e.is_symlink()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path tokenizer_path = argc > 1 ? argv[1] : "../shared/fixtures/gpt2-bpe/tokenizer.json";
  std::vector<std::filesystem::path> files(argv + std::min(argc, 2), argv + argc);
  if (files.empty()) files = default_texts();
  const std::string text = read_texts(files);
  const double mb = text.size() / 1e6;

  const double t_load = median_cpu_seconds(3, [&] { lm::BpeTokenizer::load_tokenizer_json(tokenizer_path); });
  auto cached = lm::BpeTokenizer::load_tokenizer_json(tokenizer_path);
  auto uncached = lm::BpeTokenizer::load_tokenizer_json(tokenizer_path);
  uncached->set_cache_capacity(0);

  double t0 = thread_cpu_seconds();
  const auto ids = cached->encode(text, false);
  const double t_cold = thread_cpu_seconds() - t0;
  const double t_warm = median_cpu_seconds(5, [&] { cached->encode(text, false); });
  const double t_uncached = median_cpu_seconds(3, [&] { uncached->encode(text, false); });
  size_t pieces = 0;
  const double t_split = median_cpu_seconds(5, [&] {
    std::vector<std::string_view> out;
    lm::bpe::split_gpt2(text, out);
    pieces = out.size();
  });
  const bool same = uncached->encode(text, false) == ids && cached->decode(ids) == text;

  auto rate = [&](double seconds) {
    return nlohmann::json{{"seconds", seconds}, {"mb_per_s", mb / seconds}, {"tokens_per_s", ids.size() / seconds}};
  };
  nlohmann::json out = {
      {"bench", "tokenizer"},
      {"machine", bench::machine_info()},
      {"threads", 1},
      {"timing", "thread CPU seconds, median"},
      {"tokenizer", tokenizer_path.string()},
      {"text_bytes", text.size()},
      {"text_files", files.size()},
      {"tokens", ids.size()},
      {"pieces", pieces},
      {"load_seconds", t_load},
      {"encode_cached_first_pass", rate(t_cold)},
      {"encode_cached_warm", rate(t_warm)},
      {"encode_uncached", rate(t_uncached)},
      {"pretokenize_only", {{"seconds", t_split}, {"mb_per_s", mb / t_split}}},
      {"speedup_cached_warm_vs_uncached", t_uncached / t_warm},
      {"speedup_cached_first_pass_vs_uncached", t_uncached / t_cold},
      {"warm_fraction_of_pretokenize_floor", t_split / t_warm},
      {"outputs_identical_and_lossless", same},
  };
  std::puts(out.dump(1).c_str());
  return same ? 0 : 1;
}
