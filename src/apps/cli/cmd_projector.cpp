// `tinyemo projector train|eval|classify|import`: TinyEmo's Metric Projector
// on precomputed image features (see src/models/projector/ and docs/projector.md).
#include <algorithm>
#include <cstdio>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "data/zero_shot.h"
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
                     ->check(CLI::PositiveNumber);
  auto* epochs = cmd->add_option("--epochs", o->epochs, "epochs (per ensemble member)")->check(CLI::PositiveNumber);
  cmd->add_option("--batch", o->batch, "batch size (last partial batch dropped, as TinyEmo)")
      ->check(CLI::Range(2, 1 << 20));
  cmd->add_option("--seed", o->seed, "seed of the initialisation, shuffling and dropout");
  cmd->add_option("--val-fraction", o->val_fraction,
                  "part of every label held out for validation (recorded in the model: `eval --split val`)")
      ->check(CLI::Range(0.0, 0.95));
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
    std::string model, features, split = "all", labels, anchors;
    bool json = false;
    LmAnchorOptions lm;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("eval", "top-1 accuracy, confusion matrix and per-class F1 on labelled features");
  cmd->add_option("--model", o->model, "projector model (.safetensors)")->required();
  cmd->add_option("--features", o->features, "feature folder (<label>/<name>.pt) or feature shard (.safetensors)")
      ->required();
  cmd->add_option("--split", o->split,
                  "all: every feature; val: exactly the files the model held out at training (--val-fraction); "
                  "train: the others")
      ->check(CLI::IsMember({"all", "val", "train"}));
  cmd->add_option("--labels", o->labels, "comma-separated subset of the model's labels to choose among");
  cmd->add_option("--anchors", o->anchors, "replace the label set: safetensors with `anchors` [L, H] + `labels`");
  o->lm.add_to(cmd);
  cmd->add_flag("--json", o->json,
                "print one JSON object: accuracy, n, labels, confusion (rows = true), per_class, macro_f1");
  cmd->callback([o] {
    ProjectorModel model = ProjectorModel::load(o->model);
    const FeatureSet all = load_features(o->features, model.input_dim());
    if (!o->anchors.empty()) use_anchors(model, load_anchors(o->anchors), o->anchors);
    if (o->lm.given()) use_anchors(model, o->lm.anchors(all.labels), o->lm.lm);
    if (!o->labels.empty()) restrict_labels(model, split_label_list(o->labels));
    FeatureSet set = pipeline::select_split(all, model, o->split, o->model);
    const Evaluation e = pipeline::evaluate_features(model, std::move(set));
    if (o->json) {
      nlohmann::json j = evaluation_json(e);
      j["split"] = o->split;
      print_json(j);
    } else {
      print_evaluation_text(e);
    }
  });
}

void add_classify(CLI::App& group) {
  struct Opts {
    std::string model, labels, anchors;
    std::vector<std::string> files;
    int64_t top_k = 3;
    bool json = false;
    LmAnchorOptions lm;
  };
  auto o = std::make_shared<Opts>();
  auto* cmd = group.add_subcommand("classify", "classify feature files by their nearest label anchor");
  cmd->add_option("--model", o->model, "projector model (.safetensors)")->required();
  cmd->add_option("--top-k", o->top_k, "labels to list per file, best first")->check(CLI::PositiveNumber);
  cmd->add_option("--labels", o->labels,
                  "comma-separated labels to choose among: a subset of the model's, or any with --anchors-lm");
  cmd->add_option("--anchors", o->anchors,
                  "replace the label set: safetensors with `anchors` [L, H] + metadata `labels` (open taxonomy)");
  o->lm.add_to(cmd);
  cmd->add_flag("--json", o->json, "print one JSON object {labels, results: [{file, predicted, top: [...]}]}");
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
    const std::vector<std::string>& names = rows.names;
    const std::vector<float>& x = rows.values;
    const int64_t n = static_cast<int64_t>(names.size());
    const Scores s = classify(model, x.data(), n);
    const int64_t L = s.labels;
    nlohmann::json results = nlohmann::json::array();
    for (int64_t i = 0; i < n; ++i) {
      nlohmann::json top = nlohmann::json::array();
      for (int64_t l : s.top_k(i, o->top_k)) {
        top.push_back({{"label", model.labels()[l]},
                       {"distance", s.distances[i * L + l]},
                       {"cosine", s.cosines[i * L + l]},
                       {"probability", s.probabilities[i * L + l]}});
      }
      results.push_back({{"file", names[i]}, {"predicted", model.labels()[s.predicted[i]]}, {"top", top}});
      if (!o->json) {
        std::printf("%s:", names[i].c_str());
        for (const auto& t : top) {
          std::printf("  %s %.3f", t["label"].get<std::string>().c_str(), t["probability"].get<double>());
        }
        std::printf("\n");
      }
    }
    if (o->json) print_json({{"labels", model.labels()}, {"results", results}});
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
    if (o->lm.given()) {
      save_anchors(o->out, o->lm.anchors(split_label_list(o->labels)));
    } else {
      const auto encoder = data::ClipTextEncoder::load(o->clip_text, vocab_option(o->vocab));
      save_anchors(o->out, data::clip_text_anchors(encoder, split_label_list(o->labels), o->prompt_template));
    }
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
