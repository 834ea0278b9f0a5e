// `tinyemo convert --to gguf --quant f16|q8_0|q4_0|q4_k|q5_k|q6_k [--layout llama.cpp|tinyemo]
//  --model DIR|FILE.gguf --out FILE.gguf [--mmproj-out FILE.gguf]`: an LM checkpoint to one GGUF file, by
// default in llama.cpp's layout (llama.cpp and tinyemo load it), or tinyemo's own
// (see models/lm/gguf_model.h for what each holds). With --mmproj-out, --model is
// a TinyLLaVA folder written as llama.cpp's pair: its LM to --out and its vision
// tower + connector to the mmproj (models/mm/mmproj.h).
#include <cstdio>
#include <filesystem>

#include "apps/cli/command.h"
#include "models/lm/gguf_model.h"
#include "models/mm/mmproj.h"
#include "models/mm/model.h"

namespace tinyemo::cli {
namespace {

struct ConvertOptions {
  std::string to, quant, model, out, mmproj_out, layout = "llama.cpp";
  bool json = false;
};

// A TinyLLaVA folder as llama.cpp's pair: the LM in llama.cpp's layout (with
// the folder's tokenizer) and the mmproj.
void convert_pair(const ConvertOptions& o, const lm::LoadOptions& lm_options, DType d) {
  TE_CHECK(o.layout == "llama.cpp", "--mmproj-out: the pair is llama.cpp's, so --layout must be llama.cpp (got \"{}\")",
           o.layout);
  TE_CHECK(std::filesystem::absolute(o.out).lexically_normal() != std::filesystem::absolute(o.mmproj_out).lexically_normal(),
           "--out and --mmproj-out name the same file ({})", o.out);
  mm::MmLoadOptions options;
  options.lm = lm_options;
  const mm::TinyLlavaModel model = mm::TinyLlavaModel::load(o.model, options);
  // Either writer may refuse what llama.cpp cannot express: the mmproj waits
  // beside its destination until the LM is written, so a refusal leaves neither file.
  const DType matrices = d == DType::F32 ? DType::F32 : DType::F16;
  const std::filesystem::path pending = o.mmproj_out + ".tmp.pair";
  const size_t mmproj_tensors = save_mmproj_gguf(model, pending, matrices);
  try {
    save_lm_gguf(model.lm(), o.out, lm::GgufLayout::LlamaCpp, o.model);
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(pending, ignored);
    throw;
  }
  std::filesystem::rename(pending, o.mmproj_out);
  const auto lm_bytes = static_cast<uintmax_t>(std::filesystem::file_size(o.out));
  const auto mmproj_bytes = static_cast<uintmax_t>(std::filesystem::file_size(o.mmproj_out));
  if (o.json) {
    print_json({{"out", o.out},
                {"mmproj_out", o.mmproj_out},
                {"layout", o.layout},
                {"architecture", model.lm().config().architecture},
                {"quant", o.quant},
                {"tensors", model.lm().tensors().size()},
                {"mmproj_tensors", mmproj_tensors},
                {"mmproj_dtype", std::string(dtype_name(matrices))},
                {"bytes", lm_bytes},
                {"mmproj_bytes", mmproj_bytes}});
  } else {
    std::printf("wrote %s (llama.cpp layout, %s, %s, %zu tensors, %ju bytes)\n", o.out.c_str(),
                model.lm().config().architecture.c_str(), o.quant.c_str(), model.lm().tensors().size(), lm_bytes);
    std::printf("wrote %s (llama.cpp mmproj, projector mlp, %s, %zu tensors, %ju bytes)\n", o.mmproj_out.c_str(),
                std::string(dtype_name(matrices)).c_str(), mmproj_tensors, mmproj_bytes);
  }
}

const CommandRegistration kConvert("convert", [](CLI::App& root) {
  auto o = std::make_shared<ConvertOptions>();
  auto* cmd = root.add_subcommand("convert", "convert an LM checkpoint to GGUF");
  cmd->add_option("--to", o->to, "output format: gguf")->required();
  cmd->add_option("--quant", o->quant,
                  "weight matrices as f16, q8_0, q4_0, q4_k, q5_k or q6_k (also f32, bf16); norms and biases stay "
                  "f32; k-quant rows not a multiple of 256 long become q8_0, q8_0/q4_0 rows not a multiple of 32 f16")
      ->required();
  cmd->add_option("--layout", o->layout,
                  "llama.cpp (default: llama.cpp's tensor names, keys and tokenizer metadata; llama.cpp and tinyemo "
                  "load it) or tinyemo (Hugging Face names and config.json; every config tinyemo runs)")
      ->check(CLI::IsMember({"llama.cpp", "tinyemo"}));
  cmd->add_option("--model", o->model, "Hugging Face model folder (config.json + safetensors) or a .gguf")->required();
  cmd->add_option("--out", o->out, "output .gguf file (written atomically)")->required();
  cmd->add_option("--mmproj-out", o->mmproj_out,
                  "--model is a TinyLLaVA folder: write its LM to --out and its vision tower + mlp2x_gelu connector "
                  "as llama.cpp's mmproj .gguf here (matrices f32 with --quant f32, else f16)");
  cmd->add_flag("--json", o->json, "print a JSON summary");
  cmd->callback([o] {
    TE_CHECK(o->to == "gguf", "--to \"{}\": only gguf is supported", o->to);
    DType d;
    TE_CHECK(parse_dtype(o->quant, &d) && (d == DType::F16 || d == DType::Q8_0 || d == DType::Q4_0 ||
                                           d == DType::F32 || d == DType::BF16 || dtype_is_kquant(d)),
             "--quant \"{}\": expected f16, q8_0, q4_0, q4_k, q5_k or q6_k (or f32, bf16)", o->quant);
    lm::LoadOptions options;
    options.weight_dtype = d;
    options.compute_layout = false;
    if (!o->mmproj_out.empty()) {
      convert_pair(*o, options, d);
      return;
    }
    const lm::LmModel model = lm::LmModel::load(o->model, options);
    save_lm_gguf(model, o->out, o->layout == "tinyemo" ? lm::GgufLayout::Tinyemo : lm::GgufLayout::LlamaCpp);
    const nlohmann::json summary = {{"out", o->out},
                                    {"layout", o->layout},
                                    {"architecture", model.config().architecture},
                                    {"quant", o->quant},
                                    {"tensors", model.tensors().size()},
                                    {"bytes", std::filesystem::file_size(o->out)}};
    if (o->json) {
      print_json(summary);
    } else {
      std::printf("wrote %s (%s layout, %s, %s, %zu tensors, %ju bytes)\n", o->out.c_str(), o->layout.c_str(),
                  model.config().architecture.c_str(), o->quant.c_str(), model.tensors().size(), static_cast<uintmax_t>(std::filesystem::file_size(o->out)));
    }
  });
});

}  // namespace
}  // namespace tinyemo::cli
