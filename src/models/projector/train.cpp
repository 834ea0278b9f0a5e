#include "models/projector/train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/matmul.h"
#include "models/projector/rng.h"

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
    o.loss = {LossKind::SoftmaxCE, 0.1, 0.1};
    o.input_norm = InputNorm::L2;
    o.epochs = 20;
    o.swa_epochs = 5;
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

std::vector<float> prepared_inputs(const FeatureSet& set, InputNorm norm) {
  const int64_t N = set.size(), D = set.dim();
  const float* src = set.features.data<float>();
  std::vector<float> x(src, src + N * D);
  if (norm == InputNorm::L2) {
    normalize_rows<float>(x.data(), N, D, x.data());
    const float scale = std::sqrt(static_cast<float>(D));
    for (float& v : x) v *= scale;
  }
  return x;
}

// BatchNorm population statistics of the first Linear's output over all of
// `x` (for weights averaged across epochs, whose running statistics are stale).
void recompute_bn_stats(ProjectorModel& m, const std::vector<float>& x, int64_t N) {
  const int64_t D = m.input_dim(), H = m.hidden_dim();
  const auto p = MlpParamsView<const float>::at(m.params().data(), m.layout());
  std::vector<double> sum(static_cast<size_t>(H), 0.0), sq(static_cast<size_t>(H), 0.0);
  constexpr int64_t kChunk = 256;
  std::vector<float> z(static_cast<size_t>(kChunk * H));
  const Tensor w1 = Tensor::view(DType::F32, {H, D}, nullptr, p.w1);
  for (int64_t r0 = 0; r0 < N; r0 += kChunk) {
    const int64_t n = std::min(kChunk, N - r0);
    linear(x.data() + r0 * D, n, w1, p.b1, z.data());
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t h = 0; h < H; ++h) {
        const double v = z[i * H + h];
        sum[h] += v;
        sq[h] += v * v;
      }
    }
  }
  for (int64_t h = 0; h < H; ++h) {
    const double mean = sum[h] / N;
    m.running_mean()[h] = static_cast<float>(mean);
    m.running_var()[h] = static_cast<float>(std::max(0.0, (sq[h] - N * mean * mean) / std::max<int64_t>(1, N - 1)));
  }
}

}  // namespace

ProjectorModel train_projector(const FeatureSet& train, const TrainOptions& o,
                               const std::function<void(const EpochReport&)>& on_epoch) {
  const int64_t N = train.size(), D = train.dim(), H = o.hidden;
  TE_CHECK(N >= 2 && D > 0, "{}: need at least 2 training features, got {}", train.source, N);
  TE_CHECK(o.batch >= 2, "batch size must be at least 2 (BatchNorm), got {}", o.batch);
  TE_CHECK(o.epochs >= 1, "epochs must be at least 1, got {}", o.epochs);
  TE_CHECK(H > 0, "hidden size must be positive, got {}", H);
  TE_CHECK(o.dropout >= 0.0 && o.dropout < 1.0, "dropout {} not in [0, 1)", o.dropout);
  TE_CHECK(o.swa_epochs >= 0 && o.swa_epochs <= o.epochs, "SWA epochs {} not in [0, epochs]", o.swa_epochs);

  // Labels: the anchors' (fixed anchors) or the training set's (learned).
  std::vector<std::string> labels = o.anchors ? o.anchors->labels : train.labels;
  std::vector<int64_t> y_all(static_cast<size_t>(N));
  {
    std::map<std::string, int64_t> index;
    for (size_t l = 0; l < labels.size(); ++l) index[labels[l]] = static_cast<int64_t>(l);
    for (int64_t i = 0; i < N; ++i) {
      const int64_t l = train.label_ids[i];
      TE_CHECK(l >= 0 && l < static_cast<int64_t>(train.labels.size()), "{}: {} has no label", train.source,
               train.files[i]);
      const auto it = index.find(train.labels[l]);
      TE_CHECK(it != index.end(), "label \"{}\" of the training features has no anchor", train.labels[l]);
      y_all[i] = it->second;
    }
  }
  const int64_t L = static_cast<int64_t>(labels.size());
  if (o.anchors) {
    TE_CHECK(o.anchors->hidden == H, "anchors have dimension {}, the projector's output has {}", o.anchors->hidden, H);
  }

  ProjectorConfig config;
  config.dims = {D, H};
  config.dropout = o.dropout;
  config.input_norm = o.input_norm;
  config.temperature = o.loss.temperature;
  ProjectorModel model(config, labels);
  const MlpLayout& layout = model.layout();

  // One flat buffer: MLP parameters, then the anchors when they are learned.
  const bool learn_anchors = !o.anchors.has_value();
  const int64_t n_params = layout.size + (learn_anchors ? L * H : 0);
  std::vector<float> params(static_cast<size_t>(n_params)), grads(static_cast<size_t>(n_params), 0.0f);
  Rng init_rng(o.seed);
  mlp_init<float>(layout, params.data(), init_rng);
  std::vector<float> fixed_anchors;
  if (learn_anchors) {
    for (int64_t k = 0; k < L * H; ++k) params[layout.size + k] = static_cast<float>(init_rng.normal());
  } else {
    fixed_anchors = o.anchors->rows;
  }
  const float* anchors = learn_anchors ? params.data() + layout.size : fixed_anchors.data();
  float* anchor_grads = learn_anchors ? grads.data() + layout.size : nullptr;

  const std::vector<float> x_all = prepared_inputs(train, o.input_norm);
  const int64_t B = std::min<int64_t>(o.batch, N);
  const int64_t batches = N / B;  // the last partial batch is dropped (TinyEmo: drop_last=True)
  const OneCycleSchedule schedule(o.schedule, batches * o.epochs);
  AdamW adam(n_params, o.adamw);
  Rng shuffle_rng(o.seed + 1), dropout_rng(o.seed + 2);
  const float keep_value = static_cast<float>(1.0 / (1.0 - o.dropout));
  const float eps = static_cast<float>(config.bn_eps), momentum = static_cast<float>(config.bn_momentum);

  StepBuffers buf(B, D, H);
  std::vector<int64_t> order(static_cast<size_t>(N));
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> swa_sum;
  int swa_count = 0;
  int64_t step = 0;
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    const auto t0 = std::chrono::steady_clock::now();
    shuffle_rng.shuffle(order);
    double loss_sum = 0.0;
    for (int64_t b = 0; b < batches; ++b, ++step) {
      for (int64_t i = 0; i < B; ++i) {
        const int64_t r = order[b * B + i];
        std::copy_n(x_all.data() + r * D, D, buf.x.data() + i * D);
        buf.y[i] = y_all[r];
      }
      const float* keep = nullptr;
      if (o.dropout > 0.0) {
        for (float& k : buf.keep) k = dropout_rng.uniform() >= o.dropout ? keep_value : 0.0f;
        keep = buf.keep.data();
      }
      mlp_forward_train<float>(layout, params.data(), buf.x.data(), B, keep, eps, buf.cache, buf.z.data());
      loss_sum += embedding_loss<float>(o.loss, buf.z.data(), anchors, buf.y.data(), B, L, H, buf.dz.data(),
                                        anchor_grads, buf.loss);
      mlp_backward<float>(layout, params.data(), buf.x.data(), buf.cache, buf.dz.data(), grads.data(), nullptr);
      bn_update_running<float>(buf.cache, momentum, model.running_mean().data(), model.running_var().data());
      ++model.num_batches_tracked;
      adam.begin_step(schedule.lr(step), schedule.beta1(step));
      adam.update(params.data(), grads.data(), 0, n_params);
    }
    if (epoch >= o.epochs - o.swa_epochs) {
      swa_sum.resize(params.size(), 0.0);
      for (size_t k = 0; k < params.size(); ++k) swa_sum[k] += params[k];
      ++swa_count;
    }
    if (on_epoch) {
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      on_epoch({epoch + 1, batches ? loss_sum / static_cast<double>(batches) : 0.0, secs});
    }
  }

  if (swa_count > 0) {
    for (size_t k = 0; k < params.size(); ++k) params[k] = static_cast<float>(swa_sum[k] / swa_count);
  }
  std::copy_n(params.data(), layout.size, model.params().data());
  if (swa_count > 0) recompute_bn_stats(model, x_all, N);
  model.set_anchors(labels, std::vector<float>(anchors, anchors + L * H));
  model.config().training = {{"recipe", recipe_name(o.recipe)},
                             {"loss", loss_name(o.loss.kind)},
                             {"temperature", o.loss.temperature},
                             {"label_smoothing", o.loss.label_smoothing},
                             {"epochs", o.epochs},
                             {"batch", B},
                             {"seed", o.seed},
                             {"max_lr", o.schedule.max_lr},
                             {"pct_start", o.schedule.pct_start},
                             {"weight_decay", o.adamw.weight_decay},
                             {"swa_epochs", o.swa_epochs},
                             {"anchors", learn_anchors ? "learned" : "fixed"},
                             {"train_samples", N}};
  return model;
}

}  // namespace tinyemo::projector
