// `tinyemo bias audit`: does a projector's predicted emotion depend on image
//   groups? (statistics with permutation p-values, BH, bootstrap intervals;
//   flags for human review; JSON and a self-contained HTML report).
// `tinyemo bias associations`: WEAT-style associations between target word
//   sets and emotion labels in an LM's input-embedding space.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "analysis/associations.h"
#include "analysis/audit_inputs.h"
#include "analysis/audit_json.h"
#include "analysis/group_audit.h"
#include "analysis/report.h"
#include "apps/cli/command.h"
#include "io/file.h"
#include "models/lm/gguf_model.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"

namespace tinyemo::cli {
namespace {

struct AuditCliOptions {
  std::string model, features, groups, report;
  analysis::AuditOptions audit;
  bool json = false;
};

void print_audit_summary(const nlohmann::json& j) {
  std::printf("%lld images in %zu groups; group x predicted emotion: X^2 = %.2f, df = %d, p = %.3g, Cramer's V = %.3f\n",
              j["n"].get<long long>(), j["groups"].size(), j["independence"]["statistic"].get<double>(),
              j["independence"]["df"].get<int>(), j["independence"]["p_value"].get<double>(),
              j["independence"]["cramers_v"].get<double>());
  std::printf("%zu flag(s) for review (BH-adjusted p < %g and |effect| > %g):\n", j["flags"].size(),
              j["options"]["alpha"].get<double>(), j["options"]["min_effect"].get<double>());
  for (const auto& f : j["flags"]) {
    std::printf("- [%s] %s / %s: %s\n", f["kind"].get<std::string>().c_str(), f["group"].get<std::string>().c_str(),
                f["emotion"].get<std::string>().c_str(), f["explanation"].get<std::string>().c_str());
  }
}

void add_audit(CLI::App& bias) {
  auto o = std::make_shared<AuditCliOptions>();
  auto* cmd = bias.add_subcommand("audit", "test whether predicted emotions depend on image groups");
  cmd->add_option("--model", o->model, "projector model (.safetensors)")->required();
  cmd->add_option("--features", o->features, "features: a folder <label>/<name>.pt or a feature shard")->required();
  cmd->add_option("--groups", o->groups, "CSV with columns file,group[,label]")->required();
  cmd->add_option("--alpha", o->audit.alpha, "flag when the BH-adjusted p-value is below this")->capture_default_str();
  cmd->add_option("--min-effect", o->audit.min_effect, "and |rate difference| is above this (0.1 = 10 points)")
      ->capture_default_str();
  cmd->add_option("--permutations", o->audit.permutations, "permutation replicates")->capture_default_str();
  cmd->add_option("--bootstrap", o->audit.bootstrap, "bootstrap resamples for intervals (0: none)")
      ->capture_default_str();
  cmd->add_option("--seed", o->audit.seed, "random seed (results are reproducible for a seed)")->capture_default_str();
  cmd->add_option("--sequential", o->audit.sequential_h,
                  "stop a permutation test after this many exceedances (Besag-Clifford; 0: run all)")
      ->capture_default_str();
  cmd->add_option("--report", o->report, "also write a self-contained HTML report here");
  cmd->add_flag("--json", o->json, "print the full result as one JSON object");
  cmd->callback([o] {
    analysis::AuditInputs in = analysis::load_audit_inputs(o->model, o->features, o->groups);
    const analysis::AuditOptions& a = o->audit;
    // The command that reproduces these numbers (every option spelled out).
    in.provenance["command"] = fmt::format(
        "tinyemo bias audit --model {} --features {} --groups {} --alpha {} --min-effect {} --permutations {} "
        "--bootstrap {} --seed {}{}",
        o->model, o->features, o->groups, a.alpha, a.min_effect, a.permutations, a.bootstrap, a.seed,
        a.sequential_h > 0 ? fmt::format(" --sequential {}", a.sequential_h) : "");
    analysis::AuditResult result = analysis::run_group_audit(in.data, a);
    result.warnings.insert(result.warnings.begin(), in.warnings.begin(), in.warnings.end());
    const nlohmann::json j = analysis::audit_to_json(result, in.provenance);
    if (!o->report.empty()) {
      write_file_atomic(o->report, analysis::audit_report_html(j));
      report_written(o->report, "HTML report");
    }
    if (o->json) {
      print_json(j);
    } else {
      print_audit_summary(j);
    }
    for (const auto& w : result.warnings) std::fprintf(stderr, "tinyemo: warning: %s\n", w.c_str());
  });
}

struct AssociationsCliOptions {
  std::string lm, tokenizer, labels, report;
  std::vector<std::string> targets;
  std::string template_text = "{label}";
  bool no_bos = false, pairs = false, json = false;
  analysis::AssociationOptions assoc;
};

void print_associations_summary(const nlohmann::json& j) {
  for (const auto& t : j["targets"]) {
    std::printf("%s: closest emotions", t["name"].get<std::string>().c_str());
    for (const auto& c : t["closest"])
      std::printf(" %s (%.3f)", c["label"].get<std::string>().c_str(), c["mean_cosine"].get<double>());
    std::printf("\n");
  }
  std::printf("%zu flag(s) for review:\n", j["flags"].size());
  for (const auto& f : j["flags"]) std::printf("- %s\n", f["explanation"].get<std::string>().c_str());
}

void add_associations(CLI::App& bias) {
  auto o = std::make_shared<AssociationsCliOptions>();
  auto* cmd = bias.add_subcommand("associations", "WEAT-style associations of two term sets with emotion labels in "
                                                  "an LM's input-embedding space");
  cmd->add_option("--lm", o->lm, "LM folder (config.json + weights [+ tokenizer]) or .gguf")->required();
  cmd->add_option("--targets", o->targets, "two word lists (one term per line; `ids: 1 2 3` for token ids)")
      ->required()
      ->expected(2);
  cmd->add_option("--labels", o->labels, "emotion labels, one per line")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer (default: the one in the LM folder)");
  cmd->add_option("--template", o->template_text, "grounding text of a label anchor; {label} is replaced")
      ->capture_default_str();
  cmd->add_flag("--no-bos", o->no_bos, "average the text's tokens only (default: BOS included, as TinyEmo's anchors)");
  cmd->add_flag("--pairs", o->pairs, "also test every label pair (default: each label against the rest)");
  cmd->add_option("--permutations", o->assoc.weat.permutations, "random partitions when exact enumeration is too large")
      ->capture_default_str();
  cmd->add_option("--exact-limit", o->assoc.weat.exact_limit, "enumerate every partition up to this many")
      ->capture_default_str();
  cmd->add_option("--seed", o->assoc.weat.seed, "random seed")->capture_default_str();
  cmd->add_option("--alpha", o->assoc.alpha, "flag when the BH-adjusted p-value is below this")->capture_default_str();
  cmd->add_option("--min-effect", o->assoc.min_effect, "and |d| is above this")->capture_default_str();
  cmd->add_option("--report", o->report, "also write a self-contained HTML report here");
  cmd->add_flag("--json", o->json, "print the full result as one JSON object");
  cmd->callback([o] {
    o->assoc.label_pairs = o->pairs;
    const lm::LmModel model = lm::LmModel::load(o->lm);
    analysis::AssociationInput in;
    in.x = analysis::load_term_list(o->targets[0]);
    in.y = analysis::load_term_list(o->targets[1]);
    in.labels = analysis::load_term_list(o->labels);
    in.template_text = o->template_text;
    // The tokenizer is needed only for terms given as text.
    std::unique_ptr<lm::Tokenizer> tokenizer;
    const auto needs_text = [](const analysis::TermList& l) {
      return std::any_of(l.given_ids.begin(), l.given_ids.end(), [](const auto& ids) { return ids.empty(); });
    };
    const std::string tokenizer_path = o->tokenizer.empty() ? o->lm : o->tokenizer;
    if (needs_text(in.x) || needs_text(in.y) || needs_text(in.labels)) tokenizer = lm::load_lm_tokenizer(o->lm, o->tokenizer);
    const bool bos = !o->no_bos;
    in.x_vectors = analysis::embed_terms(model, tokenizer.get(), in.x, bos);
    in.y_vectors = analysis::embed_terms(model, tokenizer.get(), in.y, bos);
    in.label_vectors = analysis::embed_terms(model, tokenizer.get(), in.labels, bos, o->template_text);
    const nlohmann::json inputs = {
        {"lm", o->lm},
        {"tokenizer", tokenizer ? tokenizer_path : std::string("(none: token ids given)")},
        {"targets", o->targets},
        {"labels", o->labels},
        {"bos", bos},
        {"embedding_rows", model.token_embeddings().dim(0)},
        {"hidden", model.token_embeddings().dim(1)}};
    const nlohmann::json j = analysis::run_associations(in, o->assoc, inputs);
    if (!o->report.empty()) {
      write_file_atomic(o->report, analysis::associations_report_html(j));
      report_written(o->report, "HTML report");
    }
    if (o->json) {
      print_json(j);
    } else {
      print_associations_summary(j);
    }
    for (const auto& w : j["warnings"]) std::fprintf(stderr, "tinyemo: warning: %s\n", w.get<std::string>().c_str());
  });
}

const CommandRegistration kBias("bias", [](CLI::App& root) {
  auto* bias = root.add_subcommand("bias", "bias detection with the metric projector and LM embeddings");
  bias->require_subcommand(1);
  add_audit(*bias);
  add_associations(*bias);
});

}  // namespace
}  // namespace tinyemo::cli
