// `tinyemo data scan`: the emotion datasets as they ship (src/data/datasets.h).
#include <cstdio>

#include "apps/cli/command.h"
#include "data/datasets.h"

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

const CommandRegistration kData("data", [](CLI::App& root) {
  auto* group = root.add_subcommand("data", "emotion datasets as they ship; instruct-data generation");
  group->require_subcommand(1);
  add_scan(*group);
});

}  // namespace
}  // namespace tinyemo::cli
