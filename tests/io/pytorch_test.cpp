// The PyTorch reader against archives real torch wrote (tests/data/pytorch/,
// made by tools/make_pytorch_fixtures.py, and the shared fixtures), and the
// writer by round trips (tools/make_pytorch_fixtures.py verify checks that
// real torch.load reads what it writes).
#include "io/pytorch.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "io/zip.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

std::filesystem::path reference(const std::string& name) { return testing::source_dir() / "tests/data/pytorch" / name; }

std::map<std::string, Tensor> as_map(const NamedTensors& tensors) {
  std::map<std::string, Tensor> m;
  for (const auto& [name, t] : tensors) m.emplace(name, t);
  return m;
}

void expect_same(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), want.nbytes()), 0) << what;
}

bool is_view(const Tensor& t) { return !t.writable(); }  // views of the mapped archive are read-only

TEST(PyTorch, ReadsEveryReferenceArchiveAsTorchDoes) {
  const auto expected = SafetensorsFile::open(reference("expected.safetensors"));
  std::map<std::string, std::map<std::string, Tensor>> by_file;
  for (const SafetensorsEntry& e : expected.entries()) {
    const size_t colon = e.name.rfind(':');
    by_file[e.name.substr(0, colon)][e.name.substr(colon + 1)] = expected.get(e.name);
  }
  size_t files = 0, checked = 0;
  for (const auto& [file, want] : by_file) {
    const auto path = file.starts_with("shared/") ? testing::shared_dir() / file.substr(7) : reference(file);
    const auto got = as_map(load_pytorch_tensors(path));
    if (!file.starts_with("shared/")) {
      EXPECT_EQ(got.size(), want.size()) << file;
    }
    for (const auto& [name, t] : want) {
      ASSERT_TRUE(got.count(name)) << file << ": " << name;
      expect_same(got.at(name), t, file + ":" + name);
      ++checked;
    }
    ++files;
  }
  EXPECT_EQ(files, 12u);
  EXPECT_EQ(checked, 53u);
}

TEST(PyTorch, ViewsShareTheMappedStorageAndStridedTensorsAreCopied) {
  const auto t = as_map(load_pytorch_tensors(reference("views.pt")));
  // shared_a = s[2:6] and shared_b = s[5:] of one int64 storage: zero-copy, 3 elements apart.
  ASSERT_TRUE(is_view(t.at("shared_a")) && is_view(t.at("shared_b")));
  EXPECT_EQ(static_cast<const char*>(t.at("shared_b").raw()) - static_cast<const char*>(t.at("shared_a").raw()), 3 * 8);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.at("row").raw()) % 4, 0u);
  EXPECT_TRUE(is_view(t.at("row")));
  EXPECT_FALSE(is_view(t.at("transposed")));
  EXPECT_EQ(t.at("transposed").shape(), Shape({6, 4}));
  EXPECT_EQ(t.at("transposed").data<float>()[1], 6.0f);  // base[1][0]
  EXPECT_EQ(t.at("expanded").shape(), Shape({4, 3}));     // stride 0 over a 3-element storage
  EXPECT_EQ(t.at("expanded").data<float>()[11], 2.0f);
}

TEST(PyTorch, KeepsPlainValuesAndNesting) {
  const PyValue v = load_pytorch(reference("nested.pt"));
  ASSERT_EQ(v.kind, PyValue::Kind::Dict);
  std::map<std::string, const PyValue*> d;
  for (const auto& [k, value] : v.dict) d[k.kind == PyValue::Kind::Int ? "#" + std::to_string(k.i) : k.s] = &value;
  EXPECT_EQ(d.at("int")->i, 7);
  EXPECT_EQ(d.at("big")->i, int64_t{1} << 40);
  EXPECT_EQ(d.at("neg")->i, -5);
  EXPECT_EQ(d.at("float")->f, 2.5);
  EXPECT_EQ(d.at("str")->s, "hi");
  EXPECT_EQ(d.at("none")->kind, PyValue::Kind::None);
  EXPECT_TRUE(d.at("yes")->b);
  EXPECT_EQ(d.at("raw")->kind, PyValue::Kind::Bytes);
  EXPECT_EQ(d.at("raw")->s, "x\xffy");
  EXPECT_EQ(d.at("no_bytes")->kind, PyValue::Kind::Bytes);
  EXPECT_EQ(d.at("no_bytes")->s, "");
  EXPECT_EQ(d.at("#7")->kind, PyValue::Kind::Tensor);
  const PyValue& list = *d.at("list");
  ASSERT_EQ(list.kind, PyValue::Kind::List);
  ASSERT_EQ(list.items.size(), 2u);
  EXPECT_EQ(list.items[1].kind, PyValue::Kind::Tuple);
  const auto names = as_map(load_pytorch_tensors(reference("nested.pt")));
  EXPECT_TRUE(names.count("list.1.1.deep") && names.count("7"));
}

TEST(PyTorch, TinyEmoProjectorCheckpointReproducesItsReferenceOutput) {
  const auto dir = testing::fixture("tinyemo-projector");
  const NamedTensors tensors = load_pytorch_tensors(dir / "pytorch_model.bin");
  std::vector<std::string> names;
  for (const auto& [name, t] : tensors) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"model.0.weight", "model.0.bias", "model.1.weight", "model.1.bias",
                                             "model.1.running_mean", "model.1.running_var",
                                             "model.1.num_batches_tracked", "model.4.weight", "model.4.bias"}));
  const auto w = as_map(tensors);
  EXPECT_EQ(w.at("model.0.weight").shape(), Shape({256, 768}));
  EXPECT_EQ(w.at("model.1.num_batches_tracked").dtype(), DType::I64);
  EXPECT_EQ(w.at("model.1.num_batches_tracked").ndim(), 0);

  // Eval mode of Linear -> BatchNorm1d -> GELU(erf) -> Linear on the first reference row.
  const auto io = SafetensorsFile::open(dir / "io.safetensors");
  const std::vector<float> x = io.get("features").row(0).to_f32_vector();
  const std::vector<float> want = io.get("projected").row(0).to_f32_vector();
  const auto linear = [&](const std::string& layer, const std::vector<float>& in) {
    const Tensor& weight = w.at(layer + ".weight");
    const float* bias = w.at(layer + ".bias").data<float>();
    std::vector<float> out(static_cast<size_t>(weight.dim(0)));
    for (size_t o = 0; o < out.size(); ++o) {
      double acc = bias[o];
      for (size_t i = 0; i < in.size(); ++i) acc += double(weight.data<float>()[o * in.size() + i]) * in[i];
      out[o] = static_cast<float>(acc);
    }
    return out;
  };
  std::vector<float> h = linear("model.0", x);
  for (size_t c = 0; c < h.size(); ++c) {
    const float mean = w.at("model.1.running_mean").data<float>()[c], var = w.at("model.1.running_var").data<float>()[c];
    const float y = (h[c] - mean) / std::sqrt(var + 1e-5f) * w.at("model.1.weight").data<float>()[c] +
                    w.at("model.1.bias").data<float>()[c];
    h[c] = 0.5f * y * (1.0f + std::erf(y / std::sqrt(2.0f)));
  }
  EXPECT_LT(testing::rel_error(linear("model.4", h), want), 1e-5);
}

TEST(PyTorch, Emotion6FeatureFileIsOneHalfVector) {
  const auto dir = testing::data("emotion6-clip-vit-l-14/train/joy");
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const Tensor t = load_pytorch_tensor(entry.path());
    ASSERT_EQ(t.dtype(), DType::F16) << entry.path();
    ASSERT_EQ(t.shape(), Shape({768})) << entry.path();
    if (++n == 20) break;
  }
  EXPECT_EQ(n, 20u);
}

TEST(PyTorch, OpenAIClipStateDictMatchesTheSafetensorsWeights) {
  const auto dir = testing::fixture("clip-vision-tiny");
  const auto pt = as_map(load_pytorch_tensors(dir / "openai_visual_state_dict.pt"));
  const auto st = SafetensorsFile::open(dir / "model.safetensors");
  const std::string hf = "vision_model.";
  expect_same(pt.at("conv1.weight"), st.get(hf + "embeddings.patch_embedding.weight"), "conv1");
  expect_same(pt.at("class_embedding"), st.get(hf + "embeddings.class_embedding"), "class_embedding");
  expect_same(pt.at("positional_embedding"), st.get(hf + "embeddings.position_embedding.weight"), "positions");
  expect_same(pt.at("ln_post.bias"), st.get(hf + "post_layernorm.bias"), "ln_post");
  // in_proj_weight stacks q, k, v; proj is visual_projection.weight transposed.
  const Tensor in_proj = pt.at("transformer.resblocks.0.attn.in_proj_weight");
  const char* qkv[] = {"q", "k", "v"};
  for (int k = 0; k < 3; ++k) {
    expect_same(in_proj.rows(64 * k, 64 * (k + 1)),
                st.get(hf + "encoder.layers.0.self_attn." + qkv[k] + "_proj.weight"), qkv[k]);
  }
  const Tensor proj = pt.at("proj"), vp = st.get("visual_projection.weight");
  ASSERT_EQ(proj.shape(), Shape({64, 32}));
  for (int i = 0; i < 64; ++i) {
    for (int j = 0; j < 32; ++j) ASSERT_EQ(proj.data<float>()[i * 32 + j], vp.data<float>()[j * 64 + i]);
  }
}

// Tensors of every dtype, 0-d, empty and multi-dimensional.
NamedTensors sample_tensors() {
  const Tensor f32 = Tensor::from_vector<float>({2, 3}, {1, -2, 3.5f, 4, 5, -6e7f});
  Tensor flags = Tensor::empty(DType::Bool, {3});
  const uint8_t bits[] = {1, 0, 1};
  std::memcpy(flags.raw_mut(), bits, 3);
  return {{"f32", f32},
          {"f16", f32.to(DType::F16)},
          {"bf16", f32.to(DType::BF16)},
          {"f64", Tensor::from_vector<double>({2}, {1.0 / 3, -1e300})},
          {"i64", Tensor::from_vector<int64_t>({}, {int64_t{1} << 40})},
          {"i32", Tensor::from_vector<int32_t>({2}, {-7, 1 << 30})},
          {"i16", Tensor::from_vector<int16_t>({1}, {-300})},
          {"i8", Tensor::from_vector<int8_t>({2}, {-128, 127})},
          {"u8", Tensor::from_vector<uint8_t>({1, 1, 2}, {0, 255})},
          {"bool", flags},
          {"empty", Tensor::empty(DType::F32, {0, 4})}};
}

TEST(PyTorch, WritesArchivesItReadsBackWithAlignedData) {
  testing::TempDir tmp;
  const NamedTensors tensors = sample_tensors();
  save_pytorch_state_dict(tmp / "sub/state.pt", tensors);
  const NamedTensors back = load_pytorch_tensors(tmp / "sub/state.pt");
  ASSERT_EQ(back.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(back[i].first, tensors[i].first);
    expect_same(back[i].second, tensors[i].second, tensors[i].first);
  }
  const auto zip = ZipArchive::open(tmp / "sub/state.pt");
  for (const ZipEntry& e : zip.entries()) EXPECT_EQ(e.data_offset % 64, 0u) << e.name;
  EXPECT_NE(zip.find("archive/byteorder"), nullptr);

  const Tensor feature = Tensor::from_vector<float>({768}, std::vector<float>(768, 0.25f)).to(DType::F16);
  save_pytorch_tensor(tmp / "feature.pt", feature);
  expect_same(load_pytorch_tensor(tmp / "feature.pt"), feature, "feature");
  EXPECT_THROW(load_pytorch_tensor(tmp / "sub/state.pt"), Error);  // holds 11 tensors

  // For tools/make_pytorch_fixtures.py verify: real torch.load must read these too.
  if (const char* dir = std::getenv("TINYEMO_PYTORCH_WRITE_DIR")) {
    const std::filesystem::path out(dir);
    save_pytorch_state_dict(out / "state.pt", tensors);
    save_pytorch_tensor(out / "feature.pt", feature);
    NamedTensors expected = {{"feature.pt:", feature}};
    for (const auto& [name, t] : tensors) expected.emplace_back("state.pt:" + name, t);
    // The same archive with every ZIP64 record, as written for files over 4 GiB.
    ZipWriter zip64(out / "zip64.pt", /*force_zip64=*/true);
    zip64.add("archive/data.pkl", pickle_tensors({{"", feature}}, /*state_dict=*/false));
    zip64.add("archive/data/0", feature.raw(), feature.nbytes());
    zip64.add("archive/version", "3\n");
    zip64.commit();
    expected.emplace_back("zip64.pt:", feature);
    write_safetensors(out / "expected.safetensors", expected);
  }
}

TEST(PyTorch, RefusesToWriteWhatTorchCannotHoldAndLeavesNoFile) {
  testing::TempDir tmp;
  const Tensor q = Tensor::zeros(DType::Q8_0, {32});
  EXPECT_THROW(save_pytorch_tensor(tmp / "q.pt", q), Error);
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(Zip, Zip64RecordsAndDeflatedEntriesRead) {
  testing::TempDir tmp;
  ZipWriter w(tmp / "a.zip", /*force_zip64=*/true);
  w.add("x/one", "first");
  w.add("x/two", std::string(1000, 'z'));
  w.commit();
  const auto zip = ZipArchive::open(tmp / "a.zip");
  ASSERT_EQ(zip.entries().size(), 2u);
  EXPECT_EQ(zip.read(*zip.find("x/one")).view(), "first");
  EXPECT_EQ(zip.read(*zip.find("x/two")).view(), std::string(1000, 'z'));
  EXPECT_EQ(zip.find("x/three"), nullptr);

  const auto deflated = ZipArchive::open(reference("deflated.pt"));
  ASSERT_NE(deflated.find("some.folder_name/data.pkl"), nullptr);
  EXPECT_EQ(deflated.find("some.folder_name/data.pkl")->method, 8);
}

}  // namespace
}  // namespace tinyemo
