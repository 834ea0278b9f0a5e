// `tinyemo data scan`: the emotion datasets as they ship (src/data/datasets.h);
// `data pretrain|emoreason|stats|export`: instruct data from a teacher model
// (src/data/generator.h).
#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "apps/cli/command.h"
#include "apps/cli/progress.h"
#include "core/error.h"
#include "data/datasets.h"
#include "data/generator.h"

namespace tinyemo::cli {
namespace {

void add_scan(CLI::App& group) {
  struct Opts {
    std::string format, dir, taxonomies, taxonomy, level;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("scan", "list a dataset's images per split and label, and what cannot be used");
  std::string formats;
  for (const auto& f : data::dataset_formats()) formats += (formats.empty() ? "" : ", ") + f;
  cmd->add_option("--format", o->format, "dataset layout: " + formats)->required();
  cmd->add_option("dir", o->dir, "the dataset's root folder, as it ships")->required();
  cmd->add_option("--taxonomies", o->taxonomies, "folder of <name>.json taxonomies overriding the built-in ones");
  cmd->add_option("--taxonomy", o->taxonomy, "map labels with this taxonomy (name or .json) instead of the format's");
  cmd->add_option("--level", o->level, "a coarser level of the taxonomy (WEBEmo: 7 or 2)");
  cmd->add_flag("--json", o->json, "print {format, splits: {SPLIT: {LABEL: COUNT}}, skipped: [{path, reason}], ...}");
  cmd->callback([o] {
    data::ScanOptions options;
    if (!o->taxonomies.empty()) options.taxonomies = o->taxonomies;
    options.taxonomy = o->taxonomy;
    options.level = o->level;
    const data::DatasetScan scan = data::scan_dataset(o->format, o->dir, options);
    const nlohmann::json j = data::scan_summary_json(scan);
    if (o->json) {
      print_json(j);
      return;
    }
    std::printf("%s: %s (taxonomy %s%s)\n", o->format.c_str(), o->dir.c_str(), scan.taxonomy.source.c_str(),
                o->level.empty() ? "" : (", level " + o->level).c_str());
    for (const auto& [split, counts] : j["splits"].items()) {
      int64_t total = 0;
      for (const auto& [label, n] : counts.items()) total += n.get<int64_t>();
      std::printf("  %-5s %6lld:", split.c_str(), static_cast<long long>(total));
      for (const auto& [label, n] : counts.items()) std::printf(" %s %lld", label.c_str(), static_cast<long long>(n.get<int64_t>()));
      std::printf("\n");
    }
    std::printf("  skipped %zu\n", scan.skipped.size());
    for (const auto& s : scan.skipped) std::printf("    %s: %s\n", s.path.c_str(), s.reason.c_str());
  });
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

void add_generate(CLI::App& group, data::GenerationKind kind) {
  struct Opts {
    std::string teacher, teacher_model, key_env = "TINYEMO_TEACHER_API_KEY", images, format, labels, out, rejects,
        prompts, mix;
    double timeout_s = 120.0, rpm = 0.0, temperature = 0.7, backoff_base_s = 1.0, backoff_max_s = 60.0;
    int concurrency = 4, retries = 4;
    int64_t max_tokens = 512, limit = 0;
    uint64_t seed = 0;
    bool json = false, no_sync = false;
  };
  auto o = std::make_shared<Opts>();
  const bool emo = kind == data::GenerationKind::EmoReason;
  auto* cmd = group.add_subcommand(
      emo ? "emoreason" : "pretrain",
      emo ? "EmoReason fine-tuning records from a teacher: reasoning + the given label, checked"
          : "pre-training records from a teacher: captioning, VQA and sentiment QA per image");
  cmd->add_option("--teacher", o->teacher, "OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1")->required();
  cmd->add_option("--teacher-model", o->teacher_model, "the model name sent with each request")->required();
  cmd->add_option("--api-key-env", o->key_env, "environment variable holding the API key (sent as a Bearer token)")
      ->capture_default_str();
  cmd->add_option("--images", o->images, "a <label>/<file> image folder, or a dataset root with --format")->required();
  cmd->add_option("--format", o->format, "read --images as this dataset layout (emotion6, fi, ..., see data scan)");
  cmd->add_option("--labels", o->labels, emo ? "comma-separated candidate labels (default: the images' labels)"
                                             : "comma-separated labels (recorded only)");
  cmd->add_option("--out", o->out, "JSON Lines output, appended (resumes where it stopped)")->required();
  if (emo) cmd->add_option("--rejects", o->rejects, "rejected answers (default: OUT.rejects)");
  cmd->add_option("--prompts", o->prompts, "JSON prompt file {tasks, mix, emoreason} overriding the defaults");
  if (!emo) cmd->add_option("--mix", o->mix, "task weights, e.g. caption=2,vqa=1,sentiment=1");
  cmd->add_option("--timeout-s", o->timeout_s, "per request: connect and each read")->capture_default_str();
  cmd->add_option("--concurrency", o->concurrency, "requests in flight")->capture_default_str()->check(at_least(1));
  cmd->add_option("--rpm", o->rpm, "requests per minute at most (0: no limit)")->capture_default_str();
  cmd->add_option("--retries", o->retries, "further tries per image after the first")->capture_default_str();
  cmd->add_option("--backoff-s", o->backoff_base_s, "first retry delay; doubles per retry, jittered")->capture_default_str();
  cmd->add_option("--backoff-max-s", o->backoff_max_s, "longest retry delay")->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens, "max_tokens of each request")->capture_default_str();
  cmd->add_option("--temperature", o->temperature, "temperature of each request")->capture_default_str();
  cmd->add_option("--seed", o->seed, "task/prompt choice and jitter")->capture_default_str();
  cmd->add_option("--limit", o->limit, "stop after this many new records (0: all)");
  cmd->add_flag("--no-sync", o->no_sync, "do not fdatasync after each record (faster; a power cut may lose records)");
  cmd->add_flag("--json", o->json, "print the summary as JSON");
  cmd->callback([o, kind, emo] {
    data::GeneratorOptions g;
    g.kind = kind;
    g.teacher.base_url = o->teacher;
    g.teacher.model = o->teacher_model;
    if (const char* key = std::getenv(o->key_env.c_str()); key != nullptr) g.teacher.api_key = key;
    g.teacher.timeout_s = o->timeout_s;
    g.teacher.max_tokens = o->max_tokens;
    g.teacher.temperature = o->temperature;
    if (!o->prompts.empty()) g.prompts = data::PromptSet::load(o->prompts);
    if (!o->mix.empty()) {
      g.prompts.mix.clear();
      for (const auto& part : split_commas(o->mix)) {
        const size_t eq = part.find('=');
        TE_CHECK(eq != std::string::npos, "--mix: expected task=weight, got \"{}\"", part);
        try {
          g.prompts.mix[part.substr(0, eq)] = std::stod(part.substr(eq + 1));
        } catch (const std::logic_error&) {
          fail("--mix: \"{}\" is not a number", part.substr(eq + 1));
        }
      }
      g.prompts.validate("--mix");
    }
    g.out = o->out;
    g.rejects = o->rejects;
    g.concurrency = o->concurrency;
    g.requests_per_minute = o->rpm;
    g.retries = o->retries;
    g.backoff_base_s = o->backoff_base_s;
    g.backoff_max_s = o->backoff_max_s;
    g.seed = o->seed;
    g.limit = o->limit;
    g.sync = !o->no_sync;
    std::vector<std::pair<std::string, std::string>> skipped;
    const std::vector<data::GenerationItem> items = data::generation_items(o->images, o->format, &skipped);
    for (const auto& [path, why] : skipped) std::fprintf(stderr, "data: skipped %s: %s\n", path.c_str(), why.c_str());
    g.labels = split_commas(o->labels);
    if (emo && g.labels.empty()) {
      for (const auto& item : items) {
        if (std::find(g.labels.begin(), g.labels.end(), item.label) == g.labels.end()) g.labels.push_back(item.label);
      }
      std::sort(g.labels.begin(), g.labels.end());
    }
    std::unique_ptr<ProgressBar> bar;
    const data::GenerationSummary s = data::run_generator(items, g, [&](const data::GenerationProgress& p) {
      if (!bar) bar = std::make_unique<ProgressBar>(emo ? "emoreason" : "pretrain", p.total, "rec");
      if (!p.message.empty()) bar->message("data: " + p.message);
      if (p.message.empty() || p.message.starts_with("rejected") || p.message.starts_with("failed")) bar->advance();
    });
    if (bar) bar->finish();
    const nlohmann::json j = s.to_json();
    if (o->json) {
      print_json(j);
    } else {
      std::fprintf(stderr,
                   "data %s: %lld images: %lld written, %lld already done, %lld rejected, %lld failed (left for the "
                   "next run); %lld requests, %lld retries, %.1f s\n",
                   emo ? "emoreason" : "pretrain", static_cast<long long>(s.items), static_cast<long long>(s.written),
                   static_cast<long long>(s.already_done), static_cast<long long>(s.rejected),
                   static_cast<long long>(s.failed), static_cast<long long>(s.requests),
                   static_cast<long long>(s.retries), s.seconds);
      for (const char* key : {"retried_by_reason", "rejected_by_reason", "failed_by_reason"}) {
        for (const auto& [reason, n] : j[key].items()) {
          std::fprintf(stderr, "  %s %s: %lld\n", key, reason.c_str(), static_cast<long long>(n.get<int64_t>()));
        }
      }
      if (s.dropped_partial_bytes > 0) {
        std::fprintf(stderr, "  cut a partial last line (%lld bytes) left by an interrupted run\n",
                     static_cast<long long>(s.dropped_partial_bytes));
      }
    }
    if (s.failed > 0) exit_code() = 2;
  });
}

void add_stats(CLI::App& group) {
  struct Opts {
    std::string file, rejects;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("stats", "statistics of a generated JSON Lines file (prints JSON)");
  cmd->add_option("file", o->file, "the JSON Lines output of data pretrain|emoreason")->required();
  cmd->add_option("--rejects", o->rejects, "also count the reasons in this rejects file");
  cmd->callback([o] {
    std::optional<std::filesystem::path> rejects;
    if (!o->rejects.empty()) rejects = o->rejects;
    print_json(data::generation_stats(o->file, rejects));
  });
}

void add_export(CLI::App& group) {
  struct Opts {
    std::string file, out;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("export", "the JSON array TinyLLaVA Factory trains on, from a JSON Lines file");
  cmd->add_option("file", o->file, "the JSON Lines output of data pretrain|emoreason")->required();
  cmd->add_option("--out", o->out, "output .json")->required();
  cmd->callback([o] {
    const int64_t n = data::export_llava_json(o->file, o->out);
    report_written(o->out, std::to_string(n) + " records");
  });
}

const CommandRegistration kData("data", [](CLI::App& root) {
  auto* group = root.add_subcommand("data", "emotion datasets as they ship; instruct-data generation");
  group->require_subcommand(1);
  add_scan(*group);
  add_generate(*group, data::GenerationKind::Pretrain);
  add_generate(*group, data::GenerationKind::EmoReason);
  add_stats(*group);
  add_export(*group);
});

}  // namespace
}  // namespace tinyemo::cli
