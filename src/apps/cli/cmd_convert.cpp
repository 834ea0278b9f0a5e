// `tinyemo convert --to gguf --quant f16|q8_0|q4_0|q4_k|q5_k|q6_k [--layout llama.cpp|tinyemo]
//  --model DIR|FILE.gguf --out FILE.gguf`: an LM checkpoint to one GGUF file, by
// default in llama.cpp's layout (llama.cpp and tinyemo load it), or tinyemo's own
// (see models/lm/gguf_model.h for what each holds).
#include <cstdio>
#include <filesystem>

#include "apps/cli/command.h"
#include "models/lm/gguf_model.h"

namespace tinyemo::cli {
namespace {

struct ConvertOptions {
  std::string to, quant, model, out, layout = "llama.cpp";
  bool json = false;
};

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
