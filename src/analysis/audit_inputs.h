// Turns the audit's files into the arrays run_group_audit takes: the groups
// CSV, the features (TinyEmo folder `<label>/<name>.pt` or a feature shard)
// and a projector model, whose predictions and softmax probabilities are what
// is audited. Rows the audit cannot use (missing or unreadable feature files,
// labels the model does not know) are skipped and reported as warnings.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "analysis/group_audit.h"
#include "models/projector/model.h"

namespace tinyemo::analysis {

struct AuditInputs {
  AuditData data;
  std::vector<std::string> files;     // per image, as the CSV names it
  std::vector<std::string> warnings;  // rows skipped and why
  nlohmann::json provenance;          // paths and row counts, for the report
};

AuditInputs load_audit_inputs(const std::filesystem::path& model, const std::filesystem::path& features,
                              const std::filesystem::path& groups_csv);

// The same with an already loaded model (tests, other front ends).
AuditInputs load_audit_inputs(const projector::ProjectorModel& model, const std::filesystem::path& features,
                              const std::filesystem::path& groups_csv);

}  // namespace tinyemo::analysis
