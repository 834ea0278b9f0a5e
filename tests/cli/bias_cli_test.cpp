// `tinyemo bias audit` end to end on the real Emotion6 features with TinyEmo's
// published-format projector (the fixture checkpoint, imported), plus bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "analysis/rng.h"
#include "io/file.h"
#include "models/projector/dataset.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;

fs::path emotion6() { return testing::data("emotion6-clip-vit-l-14/train"); }

// Shared across tests: the imported model and the Emotion6 file list.
struct Fixture {
  testing::TempDir dir;
  fs::path model;
  std::vector<std::pair<std::string, std::string>> files;  // (relative path, label)
  Fixture() {
    model = dir / "projector.safetensors";
    projector::ProjectorModel::import_tinyemo(testing::fixture("tinyemo-projector/pytorch_model.bin"),
                                              testing::fixture("tinyemo-projector/anchors.safetensors"))
        .save(model);
    std::vector<std::string> labels;
    for (const auto& d : fs::directory_iterator(emotion6())) labels.push_back(d.path().filename().string());
    std::sort(labels.begin(), labels.end());
    for (const auto& l : labels) {
      std::vector<std::string> names;
      for (const auto& f : fs::directory_iterator(emotion6() / l)) names.push_back(f.path().filename().string());
      std::sort(names.begin(), names.end());
      for (const auto& n : names) files.emplace_back(l + "/" + n, l);
    }
  }
  fs::path write(const std::string& name, const std::string& text) const {
    write_file_atomic(dir / name, text);
    return dir / name;
  }
};

const Fixture& fixture() {
  static const Fixture f;
  return f;
}

// Group A holds `p_enriched` of the images of `enriched` emotions and
// `p_other` of the rest.
std::string groups_csv(uint64_t seed, const std::vector<std::string>& enriched, double p_enriched, double p_other,
                       bool with_labels) {
  analysis::Rng rng(seed);
  std::string csv = with_labels ? "file,group,label\n" : "file,group\n";
  for (const auto& [file, label] : fixture().files) {
    const bool e = std::find(enriched.begin(), enriched.end(), label) != enriched.end();
    csv += file + (rng.uniform() < (e ? p_enriched : p_other) ? ",A" : ",B");
    csv += with_labels ? "," + label + "\n" : "\n";
  }
  return csv;
}

nlohmann::json run_audit_json(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"bias", "audit", "--model", fixture().model.string(), "--features",
                                   emotion6().string(), "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  const auto r = testing::run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json();
}

TEST(BiasCli, PlantedBiasIsFlaggedWithEvidenceAndReport) {
  const fs::path csv = fixture().write("planted.csv", groups_csv(1, {"anger", "fear"}, 0.8, 0.4, true));
  const fs::path report = fixture().dir / "report.html";
  const auto j = run_audit_json({"--groups", csv.string(), "--seed", "3", "--report", report.string()});
  ASSERT_TRUE(j.contains("flags"));
  bool anger = false, fear = false;
  for (const auto& f : j["flags"]) {
    for (const char* key : {"group", "emotion", "p_adjusted", "effect"}) ASSERT_TRUE(f.contains(key)) << key;
    EXPECT_LT(f["p_adjusted"].get<double>(), 0.01);
    EXPECT_GT(std::fabs(f["effect"].get<double>()), 0.1);
    if (f["kind"] == "prediction_rate" && f["group"] == "A" && f["effect"].get<double>() > 0) {
      anger |= f["emotion"] == "anger";
      fear |= f["emotion"] == "fear";
      // The enrichment is in the data: the projector is not treating A differently.
      EXPECT_EQ(f["attribution"], "data") << f["explanation"];
    }
  }
  EXPECT_TRUE(anger && fear) << j["flags"].dump(1);
  EXPECT_EQ(j["n"], 1386);
  EXPECT_EQ(j["options"]["seed"], 3);
  EXPECT_EQ(j["options"]["permutations"], 10000);
  EXPECT_LT(j["label_independence"]["p_value"].get<double>(), 1e-10);
  // The report is self-contained and says what a reviewer needs.
  const std::string html = read_file(report);
  EXPECT_NE(html.find("For human review"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_NE(html.find("Flagged items"), std::string::npos);
  EXPECT_NE(html.find(csv.string()), std::string::npos);
  EXPECT_EQ(html.find("http://"), html.find("http://www.w3.org/2000/svg"));  // only the SVG namespace
  EXPECT_EQ(html.find("https://"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

TEST(BiasCli, RandomGroupsAreNotFlagged) {
  for (uint64_t seed : {11, 12}) {
    const fs::path csv = fixture().write("random.csv", groups_csv(seed, {}, 0.5, 0.5, true));
    const auto j = run_audit_json({"--groups", csv.string(), "--seed", std::to_string(seed)});
    EXPECT_TRUE(j["flags"].empty()) << j["flags"].dump(1);
  }
}

TEST(BiasCli, ReproducibleAndShardGivesTheSameAnswer) {
  // A subset as a feature shard and as the folder: the same audit.
  std::vector<int64_t> rows;
  std::string csv = "file,group\n";
  const auto all = projector::load_feature_folder(emotion6());
  for (int64_t i = 0; i < all.size(); i += 3) {
    rows.push_back(i);
    csv += all.files[i] + ".pt," + (i % 2 ? "odd" : "even") + "\n";
  }
  const fs::path shard = fixture().dir / "subset.safetensors";
  projector::save_feature_shard(shard, all.subset(rows));
  const fs::path groups = fixture().write("subset.csv", csv);
  const std::vector<std::string> common = {"--model", fixture().model.string(), "--groups", groups.string(),
                                           "--permutations", "2000", "--json", "--seed", "5"};
  std::vector<std::string> a = {"bias", "audit", "--features", emotion6().string()}, b = a;
  b[3] = shard.string();
  a.insert(a.end(), common.begin(), common.end());
  b.insert(b.end(), common.begin(), common.end());
  const auto ra = testing::run_cli(a), rb = testing::run_cli(b), rc = testing::run_cli(a);
  ASSERT_EQ(ra.exit_code, 0) << ra.err;
  ASSERT_EQ(rb.exit_code, 0) << rb.err;
  auto ja = nlohmann::json::parse(ra.out), jb = nlohmann::json::parse(rb.out);
  EXPECT_EQ(ra.out, rc.out);  // same seed, same bytes
  EXPECT_EQ(ja["pairs"], jb["pairs"]);
  EXPECT_EQ(ja["n"], static_cast<int>(rows.size()));
}

TEST(BiasCli, BadRowsAreWarnedAboutNotFatal) {
  std::string csv = "File,Group,Label\n";
  for (size_t i = 0; i < fixture().files.size(); i += 4) {
    csv += fixture().files[i].first + (i % 8 ? ",x," : ",y,") + fixture().files[i].second + "\n";
  }
  csv += "anger/does_not_exist.pt,x,anger\n";
  csv += "../../etc/passwd,x,\n";
  csv += "joy/1.pt,,joy\n";
  csv += fixture().files[0].first + ",y,anger\n";  // duplicate
  csv += fixture().files[1].first + "-missing,x,bogus\n";
  csv += "\"" + fixture().files[2].first + "\",\"y\",\"not-a-label\"\n";
  const fs::path groups = fixture().write("messy.csv", csv);
  const fs::path report = fixture().dir / "messy.html";
  const auto j = run_audit_json({"--groups", groups.string(), "--permutations", "1000", "--report", report.string()});
  ASSERT_TRUE(j.contains("warnings"));
  const std::string warnings = j["warnings"].dump();
  for (const char* expected : {"does_not_exist.pt", "leaves the features folder", "empty group cell", "already listed",
                               "smallest possible BH-adjusted", "not-a-label"}) {
    EXPECT_NE(warnings.find(expected), std::string::npos) << expected << " in " << warnings;
  }
  EXPECT_NE(read_file(report).find("does_not_exist.pt"), std::string::npos);
}

TEST(BiasCli, StructuralProblemsAreClearErrors) {
  struct Case {
    std::string csv, expected;
  };
  const std::string a = fixture().files[0].first, b = fixture().files[500].first;
  const std::vector<Case> cases = {
      {"file,group,colour\n" + a + ",x,red\n", "unknown column \"colour\""},
      {"file,label\n" + a + ",anger\n", "no \"group\" column"},
      {"file,group\n" + a + ",x\n" + b + ",x\n", "at least two groups"},
      {"file,group\n" + a + ",x,extra\n", "line 2: 3 fields, the header has 2"},
      {"file,group\nanger/nope.pt,x\njoy/nope.pt,y\n", "none of its 2 rows"},
      {"", "empty file"},
      {"file,group\n\"" + a + ",x\n", "quoted field is not closed"},
  };
  for (const auto& c : cases) {
    const fs::path groups = fixture().write("bad.csv", c.csv);
    const auto r = testing::run_cli({"bias", "audit", "--model", fixture().model.string(), "--features",
                                     emotion6().string(), "--groups", groups.string(), "--json"});
    EXPECT_EQ(r.exit_code, 1) << c.csv;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tinyemo: error:"), std::string::npos) << r.err;
  }
  const auto missing = testing::run_cli({"bias", "audit", "--model", fixture().model.string(), "--features",
                                         emotion6().string(), "--groups", "/nonexistent/groups.csv", "--json"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("/nonexistent/groups.csv"), std::string::npos) << missing.err;
  const auto bad_alpha = testing::run_cli({"bias", "audit", "--model", fixture().model.string(), "--features",
                                           emotion6().string(), "--groups", "x.csv", "--alpha", "2"});
  EXPECT_NE(bad_alpha.exit_code, 0);
}

}  // namespace
}  // namespace tinyemo
