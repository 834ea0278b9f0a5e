// Self-contained HTML reports rendered from the audits' JSON (so the report
// shows exactly what the JSON records): flagged items first with their
// evidence, inline SVG charts, the inputs, thresholds and seed, and the
// reminder that flags are for human review.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tinyemo::analysis {

// From audit_to_json's output.
std::string audit_report_html(const nlohmann::json& audit);

// From run_associations' output (associations.h).
std::string associations_report_html(const nlohmann::json& associations);

}  // namespace tinyemo::analysis
