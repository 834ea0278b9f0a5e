// `tinyemo projector train|eval|classify|import`: TinyEmo's Metric Projector
// on precomputed image features (see src/models/projector/ and docs/projector.md).
#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>

#include "apps/cli/clip_text.h"
#include "apps/cli/command.h"
#include "data/zero_shot.h"
#include "models/lm/embeddings.h"
#include "models/lm/model.h"
#include "models/lm/tokenizer.h"
#include "models/projector/classify.h"
#include "models/projector/dataset.h"
#include "models/projector/model.h"
#include "models/projector/train.h"

namespace tinyemo::cli {
namespace {

using namespace tinyemo::projector;

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

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
    const LmModel model = LmModel::load(lm);
    std::string tokenizer_path = tokenizer;
    if (tokenizer_path.empty()) {
      const std::filesystem::path p(lm);
      tokenizer_path = (std::filesystem::is_directory(p) ? p : p.parent_path()).string();
    }
    const std::unique_ptr<Tokenizer> tok = Tokenizer::load(tokenizer_path);
    AnchorSet a;
    a.labels = labels;
    a.hidden = model.token_embeddings().dim(1);
    for (const auto& label : labels) {
      std::string text = grounding;
      for (size_t at = text.find("{label}"); at != std::string::npos; at = text.find("{label}", at + label.size())) {
        text.replace(at, 7, label);
      }
      const std::vector<float> row = label_anchor(model, *tok, text).to_f32_vector();
      a.rows.insert(a.rows.end(), row.begin(), row.end());
    }
    return a;
  }
};

// Replaces the model's labels and anchors (open taxonomy); checks the width.
void use_anchors(ProjectorModel& model, AnchorSet a, const std::string& source) {
  TE_CHECK(a.hidden == model.hidden_dim(), "{}: anchors have dimension {}, the projector's output has {}", source,
           a.hidden, model.hidden_dim());
  model.set_anchors(std::move(a.labels), std::move(a.rows));
}

// The rows of `set` that the model held out (`val`), the others (`train`) or all.
FeatureSet select_split(const FeatureSet& set, const ProjectorModel& model, const std::string& split,
                        const std::string& model_path) {
  if (split == "all") return set;
  TE_CHECK(split == "val" || split == "train", "--split must be all, val or train, got \"{}\"", split);
  TE_CHECK(!model.split.files.empty(), "{}: the model records no held-out files (trained with --val-fraction 0?)",
           model_path);
  const std::set<std::string> held(model.split.files.begin(), model.split.files.end());
  std::vector<int64_t> rows;
  int64_t found = 0;
  for (int64_t i = 0; i < set.size(); ++i) {
    const bool is_held = held.count(set.files[i]) != 0;
    found += is_held;
    if (is_held == (split == "val")) rows.push_back(i);
  }
  TE_CHECK(found == static_cast<int64_t>(held.size()),
           "{}: holds {} of the model's {} held-out files (the model was trained from {})", set.source, found,
           held.size(), model.split.features);
  return set.subset(rows);
}

void print_evaluation_text(const Evaluation& e) {
  std::printf("accuracy %.4f (n=%lld)  macro-F1 %.4f\n", e.accuracy, static_cast<long long>(e.n), e.macro_f1);
  for (size_t l = 0; l < e.labels.size(); ++l) {
    std::printf("  %-12s precision %.3f  recall %.3f  f1 %.3f  n %lld\n", e.labels[l].c_str(), e.precision[l],
                e.recall[l], e.f1[l], static_cast<long long>(e.support[l]));
  }
}

Evaluation evaluate_set(const ProjectorModel& model, FeatureSet set) {
  remap_labels(set, model.labels());
  const Scores s = classify(model, set.features.data<float>(), set.size());
  std::vector<int64_t> truth, predicted;
  for (int64_t i = 0; i < set.size(); ++i) {
    if (set.label_ids[i] < 0) continue;
    truth.push_back(set.label_ids[i]);
    predicted.push_back(s.predicted[i]);
  }
  TE_CHECK(!truth.empty(), "{}: no labelled features to evaluate", set.source);
  return evaluate(truth, predicted, model.labels());
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
    TrainOptions opt = TrainOptions::for_recipe(parse_recipe(o->recipe));
    if (loss->count()) {
      opt.loss.kind = parse_loss(o->loss);
      opt.loss.temperature = default_temperature(opt.loss.kind);
    }
    if (epochs->count()) opt.epochs = o->epochs;
    opt.hidden = o->hidden;
    opt.batch = o->batch;
    opt.seed = o->seed;
    TE_CHECK(o->anchors.empty() || !o->lm.given(), "give --anchors or --anchors-lm, not both");
    if (!o->anchors.empty()) opt.anchors = load_anchors(o->anchors, o->hidden);

    const FeatureSet all = load_features(o->features);
    if (opt.anchors) {
      for (const auto& label : all.labels) {
        TE_CHECK(std::find(opt.anchors->labels.begin(), opt.anchors->labels.end(), label) != opt.anchors->labels.end(),
                 "{}: no anchor for label \"{}\" of {}", o->anchors, label, o->features);
      }
    }
    if (o->lm.given()) {
      opt.anchors = o->lm.anchors(all.labels);
      TE_CHECK(!hidden->count() || o->hidden == opt.anchors->hidden,
               "--hidden {} does not match the hidden size {} of {}", o->hidden, opt.anchors->hidden, o->lm.lm);
      opt.hidden = opt.anchors->hidden;
    }
    const Split split = split_train_val(all, o->val_fraction, o->split_seed);
    TE_CHECK(split.train.size() >= 2, "{}: too few features to train on ({} after holding out {})", o->features,
             split.train.size(), split.val.size());
    const FeatureSet train_set = all.subset(split.train);
    std::fprintf(stderr, "projector: %lld training / %lld held-out features, %s recipe, %s loss, %d epochs\n",
                 static_cast<long long>(split.train.size()), static_cast<long long>(split.val.size()),
                 o->recipe.c_str(), std::string(loss_name(opt.loss.kind)).c_str(), opt.epochs);
    ProjectorModel model = train_projector(train_set, opt, [&opt](const EpochReport& r) {
      if (opt.members > 1) std::fprintf(stderr, "member %d/%d ", r.member + 1, opt.members);
      std::fprintf(stderr, "epoch %d: loss %.5f (%.2f s)\n", r.epoch, r.mean_loss, r.seconds);
    });
    model.split.features = o->features;
    model.split.fraction = o->val_fraction;
    model.split.seed = o->split_seed;
    for (int64_t i : split.val) model.split.files.push_back(all.files[i]);
    model.save(o->out);

    nlohmann::json summary = {{"model", o->out},
                              {"train", split.train.size()},
                              {"val", split.val.size()},
                              {"labels", model.labels()},
                              {"training", model.config().training}};
    if (!split.val.empty()) {
      const Evaluation e = evaluate_set(model, all.subset(split.val));
      summary["val_evaluation"] = evaluation_json(e);
      if (!o->json) {
        std::printf("held-out ");
        print_evaluation_text(e);
      }
    }
    if (o->json) print_json(summary);
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
    if (!o->labels.empty()) restrict_labels(model, split_commas(o->labels));
    FeatureSet set = select_split(all, model, o->split, o->model);
    const Evaluation e = evaluate_set(model, std::move(set));
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
      use_anchors(model, o->lm.anchors(o->labels.empty() ? model.labels() : split_commas(o->labels)), o->lm.lm);
    } else if (!o->labels.empty()) {
      restrict_labels(model, split_commas(o->labels));
    }
    const int64_t D = model.input_dim();
    std::vector<std::string> names;
    std::vector<float> x;
    for (const auto& f : o->files) {
      if (f.size() > 12 && f.compare(f.size() - 12, 12, ".safetensors") == 0) {
        const FeatureSet shard = load_feature_shard(f, D);
        for (int64_t i = 0; i < shard.size(); ++i) names.push_back(f + ":" + shard.files[i]);
        x.insert(x.end(), shard.features.data<float>(), shard.features.data<float>() + shard.size() * D);
      } else {
        const std::vector<float> v = load_feature_file(f, D);
        names.push_back(f);
        x.insert(x.end(), v.begin(), v.end());
      }
    }
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
      save_anchors(o->out, o->lm.anchors(split_commas(o->labels)));
    } else {
      const auto encoder = data::ClipTextEncoder::load(o->clip_text, vocab_option(o->vocab));
      save_anchors(o->out, data::clip_text_anchors(encoder, split_commas(o->labels), o->prompt_template));
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
