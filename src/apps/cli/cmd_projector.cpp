// `tinyemo projector train|eval|classify|import`: TinyEmo's Metric Projector
// on precomputed image features (see src/models/projector/ and docs/projector.md).
#include <algorithm>
#include <cstdio>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "data/zero_shot.h"
#include "io/file.h"
#include "pipeline/classify.h"
#include "pipeline/projector_jobs.h"

namespace tinyemo::cli {
namespace {

using namespace tinyemo::projector;
using pipeline::split_label_list;
using pipeline::use_anchors;

// Label anchors from an LM's input embeddings (TinyEmo's LLM.get_embds): for
// each label, the mean of the embedding rows of the grounding text's tokens
// ("{label}" replaced by the label), BOS included where the tokenizer adds one.
struct LmAnchorOptions {
  std::string lm, tokenizer, grounding = "{label}";

  void add_to(CLI::App* cmd) {
    cmd->add_option("--anchors-lm", lm, "label anchors from this LM's input embeddings (HF folder or .gguf)");
    cmd->add_option("--grounding", grounding,
                    "grounding text of an LM anchor, {label} replaced, e.g. \"a scene evoking {label} to viewers\"")
        ->capture_default_str();
    cmd->add_option("--tokenizer", tokenizer, "tokenizer for --anchors-lm (default: the one in the LM folder)");
  }
  bool given() const { return !lm.empty(); }

  AnchorSet anchors(const std::vector<std::string>& labels) const {
    return pipeline::lm_label_anchors({lm, tokenizer, grounding}, labels);
  }
};

void print_evaluation_text(const Evaluation& e) {
  std::printf("accuracy %.4f (n=%lld)  macro-F1 %.4f\n", e.accuracy, static_cast<long long>(e.n), e.macro_f1);
  for (size_t l = 0; l < e.labels.size(); ++l) {
    std::printf("  %-12s precision %.3f  recall %.3f  f1 %.3f  n %lld\n", e.labels[l].c_str(), e.precision[l],
                e.recall[l], e.f1[l], static_cast<long long>(e.support[l]));
  }
  // The confusion matrix, rows = true label, columns = predicted (numbered as the rows).
  int width = 5;
  for (const auto& row : e.confusion) {
    for (int64_t c : row) width = std::max(width, static_cast<int>(std::to_string(c).size()) + 1);
  }
  std::printf("confusion (rows: true, columns: predicted)\n  %-16s", "");
  for (size_t c = 0; c < e.labels.size(); ++c) std::printf("%*zu", width, c + 1);
  std::printf("\n");
  for (size_t t = 0; t < e.confusion.size(); ++t) {
    std::printf("  %2zu %-13s", t + 1, e.labels[t].substr(0, 13).c_str());
    for (int64_t c : e.confusion[t]) std::printf("%*lld", width, static_cast<long long>(c));
    std::printf("\n");
  }
}

void add_train(CLI::App& group) {
  struct Opts {
    std::string features, out, loss = "infonce", recipe = "tinyemo", anchors;
    int64_t hidden = 1280;
    int epochs = 5, batch = 32;
    uint64_t seed = 0, split_seed = 0;
    double val_fraction = 0.2;
    bool json = false;
    LmAnchorOptions lm;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("train", "train a projector on precomputed features");
  cmd->add_option("--features", o->features, "feature folder (<label>/<name>.pt) or feature shard (.safetensors)")
      ->required();
  cmd->add_option("--out", o->out, "output model (.safetensors)")->required();
  auto* loss = cmd->add_option("--loss", o->loss,
                               "infonce (TinyEmo's, temperature 0.1), cosine (CosineEmbedding), ntxent (0.07) or ce "
                               "(softmax over anchors) [recipe's]");
  auto* hidden = cmd->add_option("--hidden", o->hidden,
                                 "output size H = the LM hidden size (1280 OpenELM-270M; default with --anchors-lm: "
                                 "the LM's)")
                     ->check(at_least(1));
  auto* epochs = cmd->add_option("--epochs", o->epochs, "epochs (per ensemble member)")->check(at_least(1));
  cmd->add_option("--batch", o->batch, "batch size (last partial batch dropped, as TinyEmo)")
      ->check(in_range(2, 1 << 20));
  cmd->add_option("--seed", o->seed, "seed of the initialisation, shuffling and dropout");
  cmd->add_option("--val-fraction", o->val_fraction,
                  "part of every label held out for validation (recorded in the model: `eval --split val`)")
      ->check(in_range(0.0, 0.95));
  cmd->add_option("--split-seed", o->split_seed, "seed of the held-out split (kept apart from --seed so that "
                                                 "training seeds share one held-out set)");
  cmd->add_option("--recipe", o->recipe,
                  "tinyemo: TinyEmo's trainer (InfoNCE); best: cosine loss, L2-normalised inputs, 5-member "
                  "ensemble (docs/projector.md)")
      ->check(CLI::IsMember({"tinyemo", "best"}));
  cmd->add_option("--anchors", o->anchors,
                  "fixed label anchors: safetensors with `anchors` [L, H] and metadata `labels` (default: learned)");
  o->lm.add_to(cmd);
  cmd->add_flag("--json", o->json, "print a JSON summary (with the held-out evaluation)");
  cmd->callback([o, loss, epochs, hidden] {
    pipeline::TrainJob job;
    job.features = o->features;
    job.out = o->out;
    job.options = TrainOptions::for_recipe(parse_recipe(o->recipe));
    if (loss->count()) {
      job.options.loss.kind = parse_loss(o->loss);
      job.options.loss.temperature = default_temperature(job.options.loss.kind);
    }
    if (epochs->count()) job.options.epochs = o->epochs;
    job.options.hidden = o->hidden;
    job.options.batch = o->batch;
    job.options.seed = o->seed;
    job.val_fraction = o->val_fraction;
    job.split_seed = o->split_seed;
    job.anchors_file = o->anchors;
    job.lm_anchors = {o->lm.lm, o->lm.tokenizer, o->lm.grounding};
    job.hidden_given = hidden->count() > 0;
    job.on_warning = [](const std::string& w) { std::fprintf(stderr, "tinyemo: warning: %s\n", w.c_str()); };
    const TrainOptions& opt = job.options;
    const pipeline::TrainJobResult r = pipeline::run_train_job(
        job,
        [&](int64_t train, int64_t val) {
          std::fprintf(stderr, "projector: %lld training / %lld held-out features, %s recipe, %s loss, %d epochs\n",
                       static_cast<long long>(train), static_cast<long long>(val), o->recipe.c_str(),
                       std::string(loss_name(opt.loss.kind)).c_str(), opt.epochs);
        },
        [&](const EpochReport& e) {
          if (opt.members > 1) std::fprintf(stderr, "member %d/%d ", e.member + 1, opt.members);
          std::fprintf(stderr, "epoch %d: loss %.5f (%.2f s)\n", e.epoch, e.mean_loss, e.seconds);
        });
    if (r.val_evaluation && !o->json) {
      std::printf("held-out ");
      print_evaluation_text(*r.val_evaluation);
    }
    if (o->json) print_json(r.summary);
    if (!o->json) std::printf("wrote %s\n", o->out.c_str());
  });
}

void add_eval(CLI::App& group) {
  struct Opts {
    std::string model, features, split = "auto", labels, anchors;
    bool json = false;
    LmAnchorOptions lm;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("eval", "top-1 accuracy, confusion matrix and per-class F1 on labelled features");
  cmd->add_option("--model", o->model, "projector model (.safetensors)")->required();
  cmd->add_option("--features", o->features, "feature folder (<label>/<name>.pt) or feature shard (.safetensors)")
      ->required();
  cmd->add_option("--split", o->split,
                  "auto (default): val when the features hold the model's held-out files, else all; val: exactly "
                  "the files the model held out at training (--val-fraction); train: the others; all: every feature")
      ->check(CLI::IsMember({"auto", "all", "val", "train"}));
  cmd->add_option("--labels", o->labels, "comma-separated subset of the model's labels to choose among");
  cmd->add_option("--anchors", o->anchors, "replace the label set: safetensors with `anchors` [L, H] + `labels`");
  o->lm.add_to(cmd);
  cmd->add_flag("--json", o->json,
                "print one JSON object: accuracy, n, labels, confusion (rows = true), per_class, macro_f1");
  cmd->callback([o] {
    ProjectorModel model = ProjectorModel::load(o->model);
    const FeatureSet all = load_features(o->features, model.input_dim());
    for (const auto& skip : all.skipped) std::fprintf(stderr, "tinyemo: warning: skipped %s\n", skip.c_str());
    if (!o->anchors.empty()) use_anchors(model, load_anchors(o->anchors), o->anchors);
    if (o->lm.given()) use_anchors(model, o->lm.anchors(all.labels), o->lm.lm);
    if (!o->labels.empty()) restrict_labels(model, split_label_list(o->labels));
    pipeline::EvalSplit split = pipeline::choose_eval_split(all, model, o->split, o->model);
    const Evaluation e = pipeline::evaluate_features(model, std::move(split.set));
    if (o->json) {
      nlohmann::json j = evaluation_json(e);
      j["split"] = split.split;
      j["split_note"] = split.note;
      print_json(j);
    } else {
      std::printf("split %s: %s\n", split.split.c_str(), split.note.c_str());
      print_evaluation_text(e);
    }
  });
}

void add_classify(CLI::App& group) {
  struct Opts {
    std::string model, labels, anchors;
    std::vector<std::string> files;
    int64_t top_k = 3;
    bool json = false, jsonl = false, csv = false;
    LmAnchorOptions lm;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("classify", "classify feature files by their nearest label anchor");
  cmd->add_option("--model", o->model, "projector model (.safetensors)")->required();
  cmd->add_option("--top-k", o->top_k, "labels to list per file, best first")->check(at_least(1));
  cmd->add_option("--labels", o->labels,
                  "comma-separated labels to choose among: a subset of the model's, or any with --anchors-lm");
  cmd->add_option("--anchors", o->anchors,
                  "replace the label set: safetensors with `anchors` [L, H] + metadata `labels` (open taxonomy)");
  o->lm.add_to(cmd);
  auto* json = cmd->add_flag("--json", o->json,
                              "print one JSON object {labels, results: [{file, predicted, scores, top: [...]} or "
                              "{file, error}]}");
  auto* jsonl = cmd->add_flag("--jsonl", o->jsonl, "one JSON object per line and row, as --json's results");
  auto* csv = cmd->add_flag("--csv", o->csv, "CSV: file, predicted, one probability column per label, error");
  json->excludes(jsonl)->excludes(csv);
  jsonl->excludes(csv);
  cmd->add_option("files", o->files, "feature files (.pt with one [D] tensor) or feature shards (.safetensors)")
      ->required();
  cmd->callback([o] {
    ProjectorModel model = ProjectorModel::load(o->model);
    if (!o->anchors.empty()) use_anchors(model, load_anchors(o->anchors), o->anchors);
    if (o->lm.given()) {
      use_anchors(model, o->lm.anchors(o->labels.empty() ? model.labels() : split_label_list(o->labels)), o->lm.lm);
    } else if (!o->labels.empty()) {
      restrict_labels(model, split_label_list(o->labels));
    }
    const pipeline::FeatureRows rows = pipeline::load_feature_rows(o->files, model.input_dim());
    const auto read = static_cast<int64_t>(rows.values.size() / static_cast<size_t>(model.input_dim()));
    const Scores s = read > 0 ? classify(model, rows.values.data(), read) : Scores{};
    const std::vector<std::string>& labels = model.labels();
    // The same keys and forms as `tinyemo classify`, with "file" naming the feature file.
    nlohmann::json results = nlohmann::json::array();
    if (o->csv) std::fputs(pipeline::classification_csv_header(labels).c_str(), stdout);
    int64_t row = 0, failed = 0;
    for (size_t i = 0; i < rows.names.size(); ++i) {
      const bool ok = rows.errors[i].empty();
      nlohmann::json r = {{"file", rows.names[i]}};
      if (ok) {
        r.update(pipeline::classification_json(s, row, labels, o->top_k));
      } else {
        std::fprintf(stderr, "tinyemo: error: %s\n", rows.errors[i].c_str());
        r["error"] = rows.errors[i];
        ++failed;
      }
      if (o->csv) {
        std::fputs(pipeline::classification_csv_row(rows.names[i], ok ? &s : nullptr, row, labels, rows.errors[i])
                       .c_str(),
                   stdout);
      } else if (o->jsonl) {
        std::printf("%s\n", r.dump().c_str());
      } else if (o->json) {
        results.push_back(std::move(r));
      } else if (ok) {
        std::printf("%s: %s", rows.names[i].c_str(), r["predicted"].get<std::string>().c_str());
        for (const auto& t : r["top"]) {
          std::printf("  %s %.3f", t["label"].get<std::string>().c_str(), t["probability"].get<double>());
        }
        std::printf("\n");
      }
      row += ok ? 1 : 0;
    }
    if (o->json) print_json({{"labels", labels}, {"results", results}});
    if (failed > 0) exit_code() = 2;  // some files failed; the others were classified
  });
}

void add_import(CLI::App& group) {
  struct Opts {
    std::string bin, anchors, out;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("import", "convert TinyEmo's projector checkpoint + anchors into one model file");
  cmd->add_option("--bin", o->bin, "TinyEmo pytorch_model.bin (AlignmentMLP state dict)")->required();
  cmd->add_option("--anchors", o->anchors, "safetensors with `anchors` [L, H] and metadata `labels`")->required();
  cmd->add_option("--out", o->out, "output model (.safetensors)")->required();
  cmd->add_flag("--json", o->json, "print a JSON summary");
  cmd->callback([o] {
    for (const auto* input : {&o->bin, &o->anchors}) check_output_outside(o->out, *input, "the input");
    const ProjectorModel model = ProjectorModel::import_tinyemo(o->bin, o->anchors);
    model.save(o->out);
    const nlohmann::json j = {{"model", o->out},
                              {"input_dim", model.input_dim()},
                              {"hidden_dim", model.hidden_dim()},
                              {"labels", model.labels()}};
    if (o->json) {
      print_json(j);
    } else {
      std::printf("wrote %s (%lld -> %lld, %zu labels)\n", o->out.c_str(), static_cast<long long>(model.input_dim()),
                  static_cast<long long>(model.hidden_dim()), model.labels().size());
    }
  });
}

void add_anchors(CLI::App& group) {
  struct Opts {
    std::string labels, out, clip_text, prompt_template = data::kDefaultPromptTemplate, vocab;
    LmAnchorOptions lm;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand(
      "anchors", "write label anchors from an LM's input embeddings or CLIP text embeddings (for --anchors)");
  cmd->add_option("--labels", o->labels, "comma-separated label names")->required();
  cmd->add_option("--out", o->out, "output .safetensors (`anchors` [L, H], metadata `labels`)")->required();
  o->lm.add_to(cmd);
  cmd->add_option("--clip-text", o->clip_text,
                  "anchors = CLIP text embeddings of the prompts (a CLIP model with a text tower)");
  cmd->add_option("--template", o->prompt_template, "--clip-text prompt, {} replaced by the label")
      ->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "--clip-text: CLIP's BPE merges (default: bpe_simple_vocab_16e6.txt.gz beside it)");
  cmd->callback([o] {
    TE_CHECK(o->lm.given() != !o->clip_text.empty(), "projector anchors: give one of --anchors-lm or --clip-text");
    projector::AnchorSet anchors;
    if (o->lm.given()) {
      anchors = o->lm.anchors(split_label_list(o->labels));
    } else {
      const auto encoder = data::ClipTextEncoder::load(o->clip_text, vocab_option(o->vocab));
      anchors = data::clip_text_anchors(encoder, split_label_list(o->labels), o->prompt_template);
    }
    save_anchors(o->out, anchors);
    report_written(o->out, std::to_string(anchors.labels.size()) + " labels x " + std::to_string(anchors.hidden));
  });
}

const CommandRegistration kProjector("projector", [](CLI::App& root) {
  auto* group = root.add_subcommand("projector", "TinyEmo's Metric Projector: train, evaluate, classify, import");
  group->require_subcommand(1);
  add_train(*group);
  add_eval(*group);
  add_classify(*group);
  add_import(*group);
  add_anchors(*group);
});

}  // namespace
}  // namespace tinyemo::cli
