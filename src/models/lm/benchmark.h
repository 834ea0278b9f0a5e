// Speed of an LM on this machine: prefill throughput and batch-1 decode, each
// set against a physical limit measured in the same run (decode: the weight
// bytes one token reads over the measured read bandwidth; prefill: peak f32
// FMA throughput). Used by `tinyemo lm bench` and bench/lm_bench.cpp.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

#include "models/lm/model.h"

namespace tinyemo {

// Prefills `prompt_tokens` random ids (best of two runs), then decodes
// `gen_tokens` greedily from the KV cache. Returns one JSON object with
// prefill_tokens_per_s, prefill_gflops, peak_f32_gflops, decode_tokens_per_s,
// weight_bytes_per_token, read_bandwidth_gb_s, copy_bandwidth_gb_s,
// decode_bound_tokens_per_s and decode_fraction_of_bound, among others.
nlohmann::json benchmark_lm(const LmModel& model, int64_t prompt_tokens, int64_t gen_tokens);

}  // namespace tinyemo
