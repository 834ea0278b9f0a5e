// JSON form of the image-group audit (what `tinyemo bias audit --json` prints).
#pragma once

#include <nlohmann/json.hpp>

#include "analysis/group_audit.h"

namespace tinyemo::analysis {

// A number, or null for NaN/infinity (JSON has neither).
nlohmann::json json_number(double v);

// Everything in the result; `inputs` (what was audited: paths, row counts) is
// copied in as given.
nlohmann::json audit_to_json(const AuditResult& result, const nlohmann::json& inputs);

}  // namespace tinyemo::analysis
