// `tinyemo eval`: TinyEmo's Table VIII protocol over feature shards of the
// emotion datasets (src/data/evaluation.h), a table in Markdown, JSON and HTML.
#include <cstdio>
#include <sstream>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "data/evaluation.h"
#include "io/file.h"

namespace tinyemo::cli {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

// "0-9", "0,3,7" or a mix ("0-4,10").
std::vector<uint64_t> parse_seeds(const std::string& s) {
  std::vector<uint64_t> out;
  for (const std::string& part : split_list(s)) {
    const size_t dash = part.find('-');
    try {
      size_t used = 0;
      if (dash == std::string::npos) {
        out.push_back(std::stoull(part, &used));
        TE_CHECK(used == part.size(), "--seeds: \"{}\" is not a number", part);
      } else {
        const uint64_t a = std::stoull(part.substr(0, dash)), b = std::stoull(part.substr(dash + 1));
        TE_CHECK(a <= b && b - a < 10000, "--seeds: bad range \"{}\"", part);
        for (uint64_t v = a; v <= b; ++v) out.push_back(v);
      }
    } catch (const std::logic_error&) {
      fail("--seeds: \"{}\" is not a seed or a range a-b", part);
    }
  }
  TE_CHECK(!out.empty(), "--seeds: no seeds in \"{}\"", s);
  return out;
}

struct Opts {
  std::vector<std::string> datasets;
  std::string train, seeds = "0-9", recipe = "tinyemo", out, taxonomies;
  int epochs = 0;
  int64_t hidden = 0;
  std::string anchors, anchors_clip_text, clip, prompt_template = data::kDefaultPromptTemplate, vocab;
  bool no_linear_probe = false, json = false;
  std::string probe_l2;
  double test_fraction = 0.2;
  uint64_t split_seed = 0;
};

void run_eval(const Opts& o) {
  std::optional<std::filesystem::path> taxonomies;
  if (!o.taxonomies.empty()) taxonomies = o.taxonomies;
  std::vector<data::EvalDataset> datasets;
  for (const std::string& spec : o.datasets) {
    const size_t eq = spec.find('=');
    TE_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(),
             "--dataset: expected NAME=PATH (e.g. emotion6=features/emotion6), got \"{}\"", spec);
    datasets.push_back(data::load_eval_dataset(spec.substr(0, eq), spec.substr(eq + 1), taxonomies));
  }
  data::EvalOptions e;
  e.train = split_list(o.train);
  e.seeds = parse_seeds(o.seeds);
  e.training = projector::TrainOptions::for_recipe(projector::parse_recipe(o.recipe));
  if (o.epochs > 0) e.training.epochs = o.epochs;
  if (o.hidden > 0) e.training.hidden = o.hidden;
  e.test_fraction = o.test_fraction;
  e.split_seed = o.split_seed;
  e.linear_probe = !o.no_linear_probe;
  if (!o.probe_l2.empty()) {
    e.probe.l2_grid.clear();
    for (const auto& v : split_list(o.probe_l2)) {
      try {
        e.probe.l2_grid.push_back(std::stod(v));
      } catch (const std::logic_error&) {
        fail("--probe-l2: \"{}\" is not a number", v);
      }
    }
  }
  TE_CHECK(o.anchors.empty() || o.anchors_clip_text.empty(), "give --anchors or --anchors-clip-text, not both");
  // Fixed anchors cover every dataset's labels, so the datasets not trained on are scored on all of theirs.
  std::vector<std::string> all_labels;
  for (const auto& d : datasets) {
    for (const auto& l : d.labels) {
      if (std::find(all_labels.begin(), all_labels.end(), l) == all_labels.end()) all_labels.push_back(l);
    }
  }
  if (!o.anchors.empty()) e.training.anchors = projector::load_anchors(o.anchors);
  if (!o.anchors_clip_text.empty()) {
    const auto encoder = data::ClipTextEncoder::load(o.anchors_clip_text, vocab_option(o.vocab));
    e.training.anchors = data::clip_text_anchors(encoder, all_labels, o.prompt_template);
  }
  if (e.training.anchors) {
    TE_CHECK(o.hidden == 0 || o.hidden == e.training.anchors->hidden, "--hidden {} does not match the anchors' size {}",
             o.hidden, e.training.anchors->hidden);
    e.training.hidden = e.training.anchors->hidden;
  }
  std::optional<data::ClipTextEncoder> zero_shot;
  if (!o.clip.empty()) {
    zero_shot.emplace(data::ClipTextEncoder::load(o.clip, vocab_option(o.vocab)));
    e.clip_zero_shot = &*zero_shot;
    e.prompt_template = o.prompt_template;
  }
  const data::EvalReport report =
      data::run_evaluation(datasets, e, [](const std::string& s) { std::fprintf(stderr, "eval: %s\n", s.c_str()); });
  const nlohmann::json j = data::report_json(report);
  const std::string md = data::report_markdown(report);
  if (!o.out.empty()) {
    write_file_atomic(o.out + ".json", j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    write_file_atomic(o.out + ".md", md);
    write_file_atomic(o.out + ".html", data::report_html(report));
    report_written(o.out + ".{md,json,html}");
  }
  if (o.json) {
    print_json(j);
  } else {
    std::fputs(md.c_str(), stdout);
  }
}

const CommandRegistration kEval("eval", [](CLI::App& root) {
  auto o = std::make_shared<Opts>();
  auto* cmd = root.add_subcommand("eval", "TinyEmo's Table VIII protocol: joint training, per-dataset top-1 over seeds");
  cmd->add_option("--dataset", o->datasets,
                  "NAME=PATH: a dataset (its taxonomy NAME: emotion6, fi, ..., or NAME:LEVEL, webemo:7) and its features: a folder of "
                  "<split>.safetensors shards (`features --format NAME`) or one feature folder/shard (split all)")
      ->required();
  cmd->add_option("--train", o->train, "comma-separated dataset names to train the projector on jointly")->required();
  cmd->add_option("--seeds", o->seeds, "training seeds: a-b ranges and/or a comma list")->capture_default_str();
  cmd->add_option("--recipe", o->recipe, "projector recipe: tinyemo or best")->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "override the recipe's epochs")->check(at_least(1));
  cmd->add_option("--hidden", o->hidden, "projector output size with learned anchors (default 1280)")
      ->check(at_least(1));
  cmd->add_option("--anchors", o->anchors, "fixed label anchors (safetensors `anchors` [L, H] + `labels`)");
  cmd->add_option("--anchors-clip-text", o->anchors_clip_text,
                  "fixed anchors from CLIP text embeddings of every dataset's labels (a whole CLIP model)");
  cmd->add_option("--clip", o->clip, "add the CLIP zero-shot row (the CLIP model the features came from)");
  cmd->add_option("--template", o->prompt_template, "CLIP prompt, {} replaced by the label")->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "CLIP's BPE merges (default: bpe_simple_vocab_16e6.txt.gz beside the model)");
  cmd->add_flag("--no-linear-probe", o->no_linear_probe, "leave out the linear-probe row");
  cmd->add_option("--probe-l2", o->probe_l2, "linear probe: comma-separated L2 penalties to cross-validate");
  cmd->add_option("--test-fraction", o->test_fraction, "held out of a trained-on dataset without a test split")
      ->capture_default_str();
  cmd->add_option("--split-seed", o->split_seed, "which images are held out")->capture_default_str();
  cmd->add_option("--taxonomies", o->taxonomies, "folder of <name>.json taxonomies overriding the built-in ones");
  cmd->add_option("--out", o->out, "write OUT.md, OUT.json and OUT.html");
  cmd->add_flag("--json", o->json, "print the JSON report instead of the Markdown table");
  cmd->callback([o] { run_eval(*o); });
});

}  // namespace
}  // namespace tinyemo::cli
