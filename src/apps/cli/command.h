// Subcommand registry: each cmd_*.cpp file registers a function that adds its
// subcommand(s) to the root CLI11 app, so commands are added without editing main.
#pragma once

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <functional>
#include <limits>
#include <string>

namespace tinyemo::cli {

using CommandSetup = std::function<void(CLI::App& root)>;

struct CommandRegistration {
  CommandRegistration(std::string name, CommandSetup setup);
};

// Prints a JSON document on stdout (one line, as scripts expect).
void print_json(const nlohmann::json& j);
// A benchmark's report: one line with --json, else indented for people.
void print_report(const nlohmann::json& j, bool json);

// "MAJOR.MINOR.PATCH" (include/tinyemo.h).
std::string version_string();

// Exit code of the last command callback (callbacks set it when they
// finish with a non-fatal failure count, e.g. a feature job with bad images).
int& exit_code();

// Option checks whose refusals read as words ("--top-k: must be ≥ 1, got 0"),
// in place of CLI11's Range / PositiveNumber / NonNegativeNumber (whose
// messages print the type's limits: "not in range 0.000000 to 1797693...").
// Says what a command wrote, on stderr (stdout stays the command's data):
// "wrote PATH (DETAIL)".
inline void report_written(const std::string& path, const std::string& detail = {}) {
  std::fprintf(stderr, "wrote %s%s%s%s\n", path.c_str(), detail.empty() ? "" : " (", detail.c_str(),
               detail.empty() ? "" : ")");
}

inline CLI::Validator in_range(double min, double max = std::numeric_limits<double>::infinity(),
                               bool min_open = false) {
  const std::string bound = max == std::numeric_limits<double>::infinity()
                                ? fmt::format("{} {}", min_open ? ">" : "≥", min)
                                : min_open ? fmt::format("> {} and ≤ {}", min, max)
                                           : fmt::format("{} .. {}", min, max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0.0;
        if (!CLI::detail::lexical_cast(text, v)) return fmt::format("must be a number, got \"{}\"", text);
        if (v < min || (min_open && v == min) || v > max) return fmt::format("must be {}, got {}", bound, text);
        return {};
      },
      bound);
}
inline CLI::Validator at_least(double min) { return in_range(min); }

// --compute of the commands that run CLIP's vision tower (clip::apply_compute).
inline void add_clip_compute_option(CLI::App& cmd, std::string& compute) {
  cmd.add_option("--compute", compute,
                 "CLIP tower's products: auto (f32 weights packed once at load, 16-bit ones as stored), f32, bf16 "
                 "(weights and activations rounded to bf16, AVX512-BF16: faster, ~1e-3 relative on the "
                 "embeddings) or stored (packed per call)")
      ->check(CLI::IsMember({"auto", "f32", "bf16", "stored"}));
}
// --compute of the commands that run a language model (checked by lm::parse_prefill_compute,
// which names the option in its error as the other options' checks do).
inline void add_lm_compute_option(CLI::App& cmd, std::string& compute) {
  cmd.add_option("--compute", compute,
                 "the language model's prefill products: f32 (default) or bf16 (AVX512-BF16 CPUs: x and weights "
                 "rounded to bf16, ~1.7x faster prefill; decode unchanged)");
}
inline CLI::Validator positive() { return in_range(0.0, std::numeric_limits<double>::infinity(), true); }

}  // namespace tinyemo::cli
