// `bias associations` in memory bounded by terms x labels (it held
// labels^2 x hidden: 2,000 labels at hidden 64 took 1.18 GB) with results
// identical to the WEAT on the explicit attribute sets; `bias audit` refuses
// a model that would produce NaN instead of reporting "0 flags".
#include <gtest/gtest.h>

#include <limits>

#include "analysis/associations.h"
#include "analysis/audit_inputs.h"
#include "analysis/groups_csv.h"
#include "analysis/svg.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "models/projector/model.h"
#include "testing/testing.h"

namespace tinyemo::analysis {
namespace {

std::vector<float> pseudo_random_vector(uint64_t seed, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& x : v) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    x = static_cast<float>(static_cast<double>(s >> 11) / 9007199254740992.0 - 0.5);
  }
  return v;
}

AssociationInput synthetic_input(int64_t labels, int64_t terms, int64_t hidden) {
  AssociationInput in;
  auto list = [&](const std::string& name, int64_t n, uint64_t seed, EmbeddedTerms& vectors) {
    TermList l;
    l.name = name;
    l.source = name + ".txt";
    for (int64_t i = 0; i < n; ++i) {
      l.terms.push_back(name + std::to_string(i));
      l.given_ids.push_back({static_cast<int32_t>(i)});
      vectors.vectors.push_back(pseudo_random_vector(seed + static_cast<uint64_t>(i), hidden));
      vectors.ids.push_back({static_cast<int32_t>(i)});
    }
    return l;
  };
  in.x = list("x", terms, 1000, in.x_vectors);
  in.y = list("y", terms, 2000, in.y_vectors);
  in.labels = list("label", labels, 3000, in.label_vectors);
  return in;
}

TEST(Associations, SameNumbersAsTheWeatOnExplicitAttributeSets) {
  const AssociationInput in = synthetic_input(5, 4, 16);
  AssociationOptions o;
  o.label_pairs = true;
  const nlohmann::json j = run_associations(in, o, nlohmann::json::object());
  const Vectors& anchors = in.label_vectors.vectors;
  ASSERT_EQ(j["tests"].size(), 5u + 10u);
  size_t i = 0;
  auto check = [&](const Vectors& a, const Vectors& b) {
    WeatOptions wo = o.weat;
    wo.stream = i;
    const WeatResult want = weat(in.x_vectors.vectors, in.y_vectors.vectors, a, b, wo);
    const auto& got = j["tests"][i];
    // The same bits: the sums run in the same order over the same cosines.
    EXPECT_EQ(got["s_x"].get<std::vector<double>>(), want.s_x) << i;
    EXPECT_EQ(got["s_y"].get<std::vector<double>>(), want.s_y) << i;
    EXPECT_EQ(got["statistic"].get<double>(), want.statistic) << i;
    EXPECT_EQ(got["effect_size"].get<double>(), want.effect_size) << i;
    EXPECT_EQ(got["p_two_sided"].get<double>(), want.p_two_sided) << i;
    ++i;
  };
  for (size_t e = 0; e < anchors.size(); ++e) {
    Vectors rest;
    for (size_t f = 0; f < anchors.size(); ++f)
      if (f != e) rest.push_back(anchors[f]);
    check({anchors[e]}, rest);
  }
  for (size_t e = 0; e < anchors.size(); ++e)
    for (size_t f = e + 1; f < anchors.size(); ++f) check({anchors[e]}, {anchors[f]});
  // The per-term cosines and the mean differences use the same cosines.
  EXPECT_EQ(j["targets"][0]["terms"][2]["cosine"]["label3"].get<double>(), cosine(in.x_vectors.vectors[2], anchors[3]));
}

TEST(Associations, MemoryGrowsWithTermsTimesLabelsNotLabelsSquaredTimesHidden) {
  // 1,000 labels at hidden 512: labels^2 x hidden floats would be 2 GB.
  const AssociationInput in = synthetic_input(1000, 4, 512);
  AssociationOptions o;
  const auto run = testing::run_in_child([&] {
    const nlohmann::json j = run_associations(in, o, nlohmann::json::object());
    if (j["tests"].size() != 1000) throw Error("wrong number of tests");
  });
  EXPECT_FALSE(run.threw_error) << run.error;
  EXPECT_FALSE(run.crashed);
  EXPECT_LT(run.peak_growth_bytes, int64_t{256} << 20) << "peak growth " << run.peak_growth_bytes;
}

TEST(BiasAudit, AModelThatWouldGiveNanIsRefused) {
  testing::TempDir tmp;
  projector::ProjectorConfig c;
  c.dims = {4, 3};
  projector::ProjectorModel m(c, {"joy", "fear"});
  m.set_members({projector::MlpWeights(m.layout())});
  std::vector<float> anchors = {1, 0, 0, 0, 1, std::numeric_limits<float>::quiet_NaN()};
  m.set_anchors({"joy", "fear"}, anchors);
  m.save(tmp / "nan.safetensors");
  write_safetensors(tmp / "features.safetensors",
                    {{"features", Tensor::zeros(DType::F32, {2, 4})},
                     {"label_ids", Tensor::from_vector<int64_t>({2}, {0, 1})}},
                    {{"labels", R"(["joy","fear"])"}, {"files", R"(["joy/1","fear/1"])"}});
  write_file_atomic(tmp / "groups.csv", "file,group\njoy/1,A\nfear/1,B\n");
  try {
    load_audit_inputs(tmp / "nan.safetensors", tmp / "features.safetensors", tmp / "groups.csv");
    ADD_FAILURE() << "a model with a NaN anchor was audited";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"anchors\" holds nan"), std::string::npos) << e.what();
  }
}

// The associations heat map has one column: its colour legend ran to x = 364
// in an SVG 232 pixels wide.
TEST(ReportCharts, TheHeatMapLegendFitsItsSvg) {
  html::HeatMap m;
  m.rows = {"anger", "joy"};
  m.cols = {"d"};
  m.values = {{0.5}, {-0.2}};
  m.scale = 2.0;
  m.print_factor = 1.0;
  const std::string svg = html::heat_map_svg(m);
  const size_t w = svg.find("width=\"");
  ASSERT_NE(w, std::string::npos);
  const double width = std::stod(svg.substr(w + 7));
  const size_t caption = svg.find("(black outline: flagged)");
  ASSERT_NE(caption, std::string::npos);
  const size_t open = svg.rfind("<text x=\"", caption);
  const double x = std::stod(svg.substr(open + 9));
  const size_t start = svg.find('>', open) + 1, end = svg.find("</text>", start);
  const double text_end = x + 7.0 * static_cast<double>(end - start);  // the layout's 7 pixels a character
  EXPECT_LE(text_end, width) << svg;
}

TEST(GroupsCsv, SkippedRowsAreSummarisedPerReason) {
  // 361 repeated files and two empty cells: three warnings, not 363.
  std::string csv = "file,group\n";
  for (int i = 0; i < 361; ++i) csv += "joy/" + std::to_string(i) + ".pt,a\n";
  for (int i = 0; i < 361; ++i) csv += "joy/" + std::to_string(i) + ".pt,b\n";
  csv += ",a\njoy/x.pt,\n";
  const GroupsCsv g = parse_groups_csv(csv, "groups.csv");
  EXPECT_EQ(g.rows.size(), 361u);
  EXPECT_EQ(g.rows_skipped, 363u);
  ASSERT_EQ(g.warnings.size(), 3u);
  EXPECT_NE(g.warnings[0].find("groups.csv: 361 rows skipped: a file already listed"), std::string::npos)
      << g.warnings[0];
  EXPECT_NE(g.warnings[0].find("line 363 (\"joy/0.pt\", first on line 2)"), std::string::npos) << g.warnings[0];
  EXPECT_NE(g.warnings[0].find("(356 more)"), std::string::npos) << g.warnings[0];
  EXPECT_NE(g.warnings[1].find("1 row skipped: empty file cell: line 724"), std::string::npos) << g.warnings[1];
  EXPECT_NE(g.warnings[2].find("empty group cell: line 725"), std::string::npos) << g.warnings[2];
}

}  // namespace
}  // namespace tinyemo::analysis
