// What the routes share: the options, the loaded models (set once by the
// loader, then read-only), the CLIP worker, the generation slots, the pixel
// budget and the metrics.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "chat_template.h"
#include "generation_slots.h"
#include "image_decoding.h"
#include "label_sets.h"
#include "metrics.h"
#include "request_parsing.h"
#include "server.h"
#include "tinyemo.hpp"
#include "vision_service.h"

namespace tinyemo::server {

struct LoadedModels {
  te::clip_ptr clip;
  te::projector_ptr projector;
  te::lm_ptr lm;          // --lm (text chat)
  te::lm_ptr anchors_lm;  // --anchors-lm (new labels)
  te::mm_ptr mm;          // --mm (chat with images, /v1/reason)
  te::clip_text_ptr clip_text;  // --clip-text (text embeddings); used under clip_text_turn
  std::unique_ptr<std::timed_mutex> clip_text_turn;
  std::string clip_id, projector_id, lm_id, anchors_lm_id, mm_id, clip_text_id;
  std::unique_ptr<LabelSets> label_sets;
  std::unique_ptr<VisionService> vision;
  std::unique_ptr<TextSlots> text;  // with --lm
  std::unique_ptr<MmSlots> mm_slots;  // with --mm
};

struct ServerState {
  explicit ServerState(const ServerOptions& o);

  ServerOptions options;
  RequestLimits limits;
  ChatTemplate chat_template = ChatTemplate::Plain;
  Metrics metrics;
  PixelBudget pixels;
  std::atomic<bool> ready{false};  // `models` is complete and may be read
  std::atomic<bool> stopping{false};
  LoadedModels models;

  // When a request started now must be done.
  Clock::time_point deadline() const { return Clock::now() + std::chrono::seconds(options.timeout_s); }
  MetricsGauges gauges() const;
};

// Loads every model the options name (te_* calls only); throws te::Error or
// std::runtime_error naming the option and file.
void load_models(ServerState& state);

// A folder's or file's last path component: what /v1/models calls a model.
std::string model_id(const std::string& path);

}  // namespace tinyemo::server
