#include "models/projector/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/rng.h"

namespace tinyemo::projector {

std::string_view recipe_name(Recipe r) { return r == Recipe::Best ? "best" : "tinyemo"; }

Recipe parse_recipe(std::string_view name) {
  if (name == "tinyemo") return Recipe::TinyEmo;
  if (name == "best") return Recipe::Best;
  fail("unknown recipe \"{}\" (expected tinyemo or best)", name);
}

TrainOptions TrainOptions::for_recipe(Recipe recipe) {
  TrainOptions o;
  o.recipe = recipe;
  if (recipe == Recipe::Best) {
    o.loss = {LossKind::Cosine, 0.1, 0.0};
    o.input_norm = InputNorm::L2;
    o.members = 5;
  }
  return o;
}

Split split_train_val(const FeatureSet& set, double fraction, uint64_t seed) {
  TE_CHECK(fraction >= 0.0 && fraction < 1.0, "validation fraction {} not in [0, 1)", fraction);
  std::map<int64_t, std::vector<int64_t>> by_label;
  for (int64_t i = 0; i < set.size(); ++i) by_label[set.label_ids[i]].push_back(i);
  Rng rng(seed ^ 0x5eed5b1177ull);
  Split s;
  for (auto& [label, idx] : by_label) {
    rng.shuffle(idx);
    const auto held = static_cast<size_t>(std::floor(fraction * static_cast<double>(idx.size()) + 0.5));
    s.val.insert(s.val.end(), idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(held));
    s.train.insert(s.train.end(), idx.begin() + static_cast<std::ptrdiff_t>(held), idx.end());
  }
  std::sort(s.train.begin(), s.train.end());
  std::sort(s.val.begin(), s.val.end());
  return s;
}

namespace {

// Everything one optimiser step touches, allocated once.
struct StepBuffers {
  StepBuffers(int64_t B, int64_t D, int64_t H)
      : x(static_cast<size_t>(B * D)),
        keep(static_cast<size_t>(B * H)),
        z(static_cast<size_t>(B * H)),
        dz(static_cast<size_t>(B * H)),
        y(static_cast<size_t>(B)) {}
  std::vector<float> x, keep, z, dz;
  std::vector<int64_t> y;
  MlpCache<float> cache;
  EmbeddingLossBuffers<float> loss;
};

// The training data as the MLP sees it: inputs [N, D] after the input
// normalisation, label indices into the model's labels.
struct PreparedData {
  std::vector<float> x;
  std::vector<int64_t> y;
  int64_t n = 0, dim = 0;
};

struct MemberResult {
  MlpWeights weights;
  std::vector<float> anchors;  // [L, H] as trained (learned) or as given (fixed)
};

// One AlignmentMLP trained as TinyEmo's Model.train() does. `anchors` are
// learned from `anchor_init` when `learn_anchors`, else held fixed.
MemberResult train_member(const PreparedData& data, const MlpLayout& layout, int64_t L,
                          const std::vector<float>& anchor_init, bool learn_anchors, const TrainOptions& o,
                          uint64_t seed, int member, const std::function<void(const EpochReport&)>& on_epoch) {
  const int64_t N = data.n, D = data.dim, H = layout.dims.hidden;
  MemberResult result{MlpWeights(layout), anchor_init};
  MlpWeights& w = result.weights;
  float* params = w.params.data();
  Rng init_rng(seed);
  mlp_init<float>(layout, params, init_rng);
  // Learned anchors have their own AdamW state (the same update, per element).
  float* anchors = result.anchors.data();
  std::vector<float> anchor_grad_buffer(learn_anchors ? static_cast<size_t>(L * H) : 0);
  float* anchor_grads = learn_anchors ? anchor_grad_buffer.data() : nullptr;

  const int64_t B = std::min<int64_t>(o.batch, N);
  const int64_t batches = N / B;  // the last partial batch is dropped (TinyEmo: drop_last=True)
  const OneCycleSchedule schedule(o.schedule, batches * o.epochs);
  AdamW adam(layout.size, o.adamw), anchor_adam(learn_anchors ? L * H : 0, o.adamw);
  Rng shuffle_rng(seed + 1), dropout_rng(seed + 2);
  const float keep_value = static_cast<float>(1.0 / (1.0 - o.dropout));
  const auto eps = static_cast<float>(ProjectorConfig{}.bn_eps);
  const auto momentum = static_cast<float>(ProjectorConfig{}.bn_momentum);

  StepBuffers buf(B, D, H);
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    shuffle_rng.shuffle(order);
    double loss_sum = 0.0;
    for (int64_t b = 0; b < batches; ++b, ++step) {
      for (int64_t i = 0; i < B; ++i) {
        const int64_t r = order[b * B + i];
        std::copy_n(data.x.data() + r * D, D, buf.x.data() + i * D);
        buf.y[i] = data.y[r];
      }
      const float* keep = nullptr;
      if (o.dropout > 0.0) {
        for (float& k : buf.keep) k = dropout_rng.uniform() >= o.dropout ? keep_value : 0.0f;
        keep = buf.keep.data();
      }
      mlp_forward_train<float>(layout, params, buf.x.data(), B, keep, eps, buf.cache, buf.z.data());
      loss_sum += embedding_loss<float>(o.loss, buf.z.data(), anchors, buf.y.data(), B, L, H, buf.dz.data(),
                                        anchor_grads, buf.loss);
      // AdamW is applied to each slice of parameters as soon as its gradient
      // exists (in cache); nothing reads a parameter after its update.
      adam.begin_step(schedule.lr(step), schedule.beta1(step));
      mlp_backward<float>(
          layout, params, buf.x.data(), buf.cache, buf.dz.data(),
          [&adam, params](int64_t offset, const float* g, int64_t n) { adam.update(params, g, offset, n); },
          nullptr);
      if (learn_anchors) {
        anchor_adam.begin_step(schedule.lr(step), schedule.beta1(step));
        anchor_adam.update(anchors, anchor_grads, 0, L * H);
      }
      bn_update_running<float>(buf.cache, momentum, w.running_mean.data(), w.running_var.data());
      ++w.num_batches_tracked;
    }
    if (on_epoch) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      on_epoch({member, epoch + 1, batches ? loss_sum / static_cast<double>(batches) : 0.0, secs});
    }
  }
  return result;
}

}  // namespace

ProjectorModel train_projector(const FeatureSet& train, const TrainOptions& o,
                               const std::function<void(const EpochReport&)>& on_epoch) {
  const int64_t N = train.size(), D = train.dim(), H = o.hidden;
  TE_CHECK(N >= 2 && D > 0, "{}: need at least 2 training features, got {}", train.source, N);
  TE_CHECK(o.batch >= 2, "batch size must be at least 2 (BatchNorm), got {}", o.batch);
  TE_CHECK(o.epochs >= 1, "epochs must be at least 1, got {}", o.epochs);
  TE_CHECK(o.members >= 1, "ensemble members must be at least 1, got {}", o.members);
  TE_CHECK(H > 0, "hidden size must be positive, got {}", H);
  TE_CHECK(o.dropout >= 0.0 && o.dropout < 1.0, "dropout {} not in [0, 1)", o.dropout);

  // Labels: the anchors' (fixed anchors) or the training set's (learned).
  const std::vector<std::string> labels = o.anchors ? o.anchors->labels : train.labels;
  const int64_t L = static_cast<int64_t>(labels.size());
  PreparedData data;
  data.n = N;
  data.dim = D;
  data.y.resize(static_cast<size_t>(N));
  {
    std::map<std::string, int64_t> index;
    for (size_t l = 0; l < labels.size(); ++l) index[labels[l]] = static_cast<int64_t>(l);
    for (int64_t i = 0; i < N; ++i) {
      const int64_t l = train.label_ids[i];
      TE_CHECK(l >= 0 && l < static_cast<int64_t>(train.labels.size()), "{}: {} has no label", train.source,
               train.files[i]);
      const auto it = index.find(train.labels[l]);
      TE_CHECK(it != index.end(), "label \"{}\" of the training features has no anchor", train.labels[l]);
      data.y[i] = it->second;
    }
  }
  if (o.anchors) {
    TE_CHECK(o.anchors->hidden == H, "anchors have dimension {}, the projector's output has {}", o.anchors->hidden, H);
  }
  data.x.resize(static_cast<size_t>(N * D));
  normalize_inputs(o.input_norm, train.features.data<float>(), N, D, data.x.data());

  ProjectorConfig config;
  config.dims = {D, H};
  config.dropout = o.dropout;
  config.input_norm = o.input_norm;
  config.temperature = o.loss.temperature;
  ProjectorModel model(config, labels);

  // Member 0 learns the anchors when none are given (initialised N(0, 1));
  // the other members train against those, so all members share one table.
  const bool learn_anchors = !o.anchors.has_value();
  std::vector<float> anchors = learn_anchors ? std::vector<float>(static_cast<size_t>(L * H)) : o.anchors->rows;
  if (learn_anchors) {
    Rng anchor_rng(o.seed ^ 0xa4c4045ull);
    for (float& v : anchors) v = static_cast<float>(anchor_rng.normal());
  }
  std::vector<MlpWeights> members;
  for (int k = 0; k < o.members; ++k) {
    const uint64_t seed = o.seed + kSplitmixGamma * static_cast<uint64_t>(k);
    MemberResult r = train_member(data, model.layout(), L, anchors, learn_anchors && k == 0, o, seed, k, on_epoch);
    members.push_back(std::move(r.weights));
    anchors = std::move(r.anchors);
  }
  model.set_members(std::move(members));
  model.set_anchors(labels, std::move(anchors));
  model.config().training = {{"recipe", recipe_name(o.recipe)},
                             {"loss", loss_name(o.loss.kind)},
                             {"temperature", o.loss.temperature},
                             {"label_smoothing", o.loss.label_smoothing},
                             {"epochs", o.epochs},
                             {"batch", std::min<int64_t>(o.batch, N)},
                             {"seed", o.seed},
                             {"members", o.members},
                             {"max_lr", o.schedule.max_lr},
                             {"pct_start", o.schedule.pct_start},
                             {"weight_decay", o.adamw.weight_decay},
                             {"anchors", learn_anchors ? "learned" : "fixed"},
                             {"train_samples", N}};
  return model;
}

}  // namespace tinyemo::projector
