// fuzz-link: tinyemo_projector
// Projector model, anchors and feature-shard files: the safetensors container
// plus what the projector reads out of it (metadata JSON, tensor names,
// shapes, dtypes, member counts). Each loader must refuse bad input with
// tinyemo::Error; what loads must be usable (a projection, every row).
#include "fuzz_input.h"
#include "models/projector/classify.h"
#include "models/projector/dataset.h"
#include "models/projector/model.h"

namespace {

template <class Fn>
void refused_or_ok(Fn&& fn) {
  try {
    fn();
  } catch (const tinyemo::Error&) {
    // refused cleanly
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tinyemo::projector;
  const auto file = tinyemo::fuzz::input_file(data, size);
  refused_or_ok([&] {
    const ProjectorModel m = ProjectorModel::load(file);
    if (m.input_dim() * m.hidden_dim() <= (int64_t{1} << 20)) {  // keep one execution cheap
      const std::vector<float> x(static_cast<size_t>(m.input_dim()), 0.5f);
      tinyemo::fuzz::consume(static_cast<uint64_t>(classify(m, x.data(), 1).predicted[0]));
    }
  });
  refused_or_ok([&] { tinyemo::fuzz::consume(load_anchors(file).rows.size()); });
  refused_or_ok([&] { tinyemo::fuzz::consume(tinyemo::fuzz::touch(load_feature_shard(file).features)); });
  return 0;
}
