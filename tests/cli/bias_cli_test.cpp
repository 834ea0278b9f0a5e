// `tinyemo bias audit` end to end on the real Emotion6 features with TinyEmo's
// published-format projector (the fixture checkpoint, imported), plus bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "io/file.h"
#include "io/safetensors.h"
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
  Rng rng(seed);
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

// A projector trained by tinyemo (3 epochs, H = 256) on the Emotion6 features.
const fs::path& trained_projector() {
  static const fs::path path = [] {
    const fs::path out = fixture().dir / "trained.safetensors";
    const auto r = testing::run_cli({"projector", "train", "--features", emotion6().string(), "--out", out.string(),
                                     "--epochs", "3", "--hidden", "256", "--seed", "0"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }();
  return path;
}

TEST(BiasCli, TinyemoTrainedProjectorPlantedAndRandomGroups) {
  const fs::path csv = fixture().write("planted_trained.csv", groups_csv(21, {"joy", "sadness"}, 0.8, 0.4, true));
  const auto r = testing::run_cli({"bias", "audit", "--model", trained_projector().string(), "--features",
                                   emotion6().string(), "--groups", csv.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  bool joy = false, sadness = false;
  for (const auto& f : j["flags"]) {
    if (f["kind"] != "prediction_rate" || f["group"] != "A" || f["effect"].get<double>() <= 0) continue;
    joy |= f["emotion"] == "joy";
    sadness |= f["emotion"] == "sadness";
    EXPECT_TRUE(f["emotion"] == "joy" || f["emotion"] == "sadness") << f["explanation"];
  }
  EXPECT_TRUE(joy && sadness) << j["flags"].dump(1);
  for (uint64_t seed : {31, 32}) {
    const fs::path random = fixture().write("random_trained.csv", groups_csv(seed, {}, 0.5, 0.5, true));
    const auto rr = testing::run_cli({"bias", "audit", "--model", trained_projector().string(), "--features",
                                      emotion6().string(), "--groups", random.string(), "--json", "--seed",
                                      std::to_string(seed)});
    ASSERT_EQ(rr.exit_code, 0) << rr.err;
    EXPECT_TRUE(nlohmann::json::parse(rr.out)["flags"].empty()) << rr.out;
  }
}

TEST(BiasCli, ModelTreatingAGroupDifferentlyIsAttributedToTheModel) {
  // Same label mix in both groups, but group A's joy images are moved most of
  // the way to the mean anger feature (as if the encoder saw them as angry):
  // the trained projector calls them anger, which only the conditional test
  // can tell apart from a difference in the data.
  auto set = projector::load_feature_folder(emotion6());
  const int64_t D = set.dim(), anger = std::find(set.labels.begin(), set.labels.end(), "anger") - set.labels.begin(),
                joy = std::find(set.labels.begin(), set.labels.end(), "joy") - set.labels.begin();
  std::vector<float> mean_anger(D, 0.0f);
  int64_t n_anger = 0;
  float* x = set.features.mutable_data<float>();
  for (int64_t i = 0; i < set.size(); ++i) {
    if (set.label_ids[i] != anger) continue;
    ++n_anger;
    for (int64_t k = 0; k < D; ++k) mean_anger[k] += x[i * D + k];
  }
  for (auto& v : mean_anger) v /= static_cast<float>(n_anger);
  Rng rng(5);
  std::string csv = "file,group,label\n";
  for (int64_t i = 0; i < set.size(); ++i) {
    const bool in_a = rng.uniform() < 0.5;
    if (in_a && set.label_ids[i] == joy) {
      for (int64_t k = 0; k < D; ++k) x[i * D + k] = 0.2f * x[i * D + k] + 0.8f * mean_anger[k];
    }
    csv += set.files[i] + (in_a ? ",A," : ",B,") + set.labels[set.label_ids[i]] + "\n";
  }
  const fs::path shard = fixture().dir / "shifted.safetensors";
  projector::save_feature_shard(shard, set);
  const fs::path groups = fixture().write("shifted.csv", csv);
  const fs::path report = fixture().dir / "shifted.html";
  const auto r = testing::run_cli({"bias", "audit", "--model", trained_projector().string(), "--features",
                                   shard.string(), "--groups", groups.string(), "--json", "--report",
                                   report.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  bool conditional = false, attributed = false;
  for (const auto& f : j["flags"]) {
    if (f["group"] != "A" || f["emotion"] != "anger") continue;
    conditional |= f["kind"] == "conditional_on_label" && f["effect"].get<double>() > 0.1;
    attributed |= f["kind"] == "prediction_rate" && f.value("attribution", "") == "model";
  }
  EXPECT_TRUE(conditional && attributed) << j["flags"].dump(1);
  EXPECT_GT(j["label_independence"]["p_value"].get<double>(), 1e-3);  // the data do not differ
  for (const auto& p : j["pairs"]) {
    if (p["group"] == "A" && p["emotion"] == "joy") {
      EXPECT_LT(p["recall_gap"].get<double>(), -0.3);  // equal opportunity broken for joy
      EXPECT_LT(p["recall_gap_ci"][1].get<double>(), 0.0);
    }
  }
}

// --- bias associations -----------------------------------------------------

const std::vector<std::string> kEmotions = {"anger", "disgust", "fear", "joy", "sadness", "surprise"};
const std::vector<std::string> kTermsA = {"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"};
const std::vector<std::string> kTermsB = {"india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa"};

// UTF-8 of GPT-2's byte-to-unicode spelling of one byte.
std::string byte_char(int b) {
  const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!printable) {
    int n = 0;
    for (int c = 0; c < b; ++c) n += !((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF));
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// A byte-level BPE tokenizer.json small enough for llama-tiny's 320-token
// vocabulary: the 256 byte tokens (ids 0-255), every test word as one token
// ("Ġword", taken whole through ignore_merges) and BOS "<s>" = 319 prepended
// by the post-processor, as LLaMA-family tokenizers do.
std::string tiny_tokenizer_json(std::map<std::string, int>& word_ids) {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  int next = 256;
  for (const auto* list : {&kEmotions, &kTermsA, &kTermsB}) {
    for (const auto& w : *list) {
      word_ids[w] = next;
      vocab["\u0120" + w] = next++;
    }
  }
  vocab["<s>"] = 319;
  const nlohmann::json j = {
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", nlohmann::json::array()}, {"ignore_merges", true}}},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"use_regex", true}}},
      {"added_tokens", {{{"id", 319}, {"content", "<s>"}, {"special", true}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {319}}, {"tokens", {"<s>"}}}}}}}}};
  return j.dump();
}

std::string lines(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) s += w + "\n";
  return s;
}

// llama-tiny (random weights) with the tiny tokenizer; with `plant`, the
// embedding rows of the first target set are moved next to "anger" and those
// of the second next to "joy".
fs::path tiny_lm(const fs::path& dir, bool plant) {
  fs::create_directories(dir);
  fs::copy_file(testing::fixture("llama-tiny/config.json"), dir / "config.json", fs::copy_options::overwrite_existing);
  std::map<std::string, int> ids;
  write_file_atomic(dir / "tokenizer.json", tiny_tokenizer_json(ids));
  const SafetensorsFile src = SafetensorsFile::open(testing::fixture("llama-tiny/model.safetensors"));
  NamedTensors tensors;
  for (const auto& e : src.entries()) {
    Tensor t = src.get(e.name).clone();
    if (plant && e.name == "model.embed_tokens.weight") {
      const int64_t H = t.dim(1);
      float* rows = t.mutable_data<float>();
      Rng rng(9);
      const auto move_near = [&](const std::vector<std::string>& words, const std::string& centre) {
        for (const auto& w : words) {
          for (int64_t h = 0; h < H; ++h) {
            rows[ids[w] * H + h] = rows[ids[centre] * H + h] + 0.02f * static_cast<float>(rng.uniform() - 0.5);
          }
        }
      };
      move_near(kTermsA, "anger");
      move_near(kTermsB, "joy");
    }
    tensors.emplace_back(e.name, std::move(t));
  }
  write_safetensors(dir / "model.safetensors", tensors);
  return dir;
}

struct AssociationFiles {
  fs::path a, b, labels;
};
AssociationFiles association_files() {
  return {fixture().write("group_a.txt", lines(kTermsA)), fixture().write("group_b.txt", lines(kTermsB)),
          fixture().write("emotions.txt", lines(kEmotions))};
}

TEST(BiasCli, AssociationsFindPlantedEmbeddingAssociation) {
  const fs::path lm = tiny_lm(fixture().dir / "lm-planted", true);
  const auto f = association_files();
  const fs::path report = fixture().dir / "associations.html";
  const auto r = testing::run_cli({"bias", "associations", "--lm", lm.string(), "--targets", f.a.string(),
                                   f.b.string(), "--labels", f.labels.string(), "--json", "--pairs", "--report",
                                   report.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tests"].size(), 6u + 15u);
  EXPECT_EQ(j["targets"][0]["closest"][0]["label"], "anger");
  EXPECT_EQ(j["targets"][1]["closest"][0]["label"], "joy");
  EXPECT_EQ(j["targets"][0]["terms"][0]["tokens"], (std::vector<int>{319, 262}));  // BOS + "alpha"
  bool anger = false, joy = false;
  for (const auto& flag : j["flags"]) {
    EXPECT_LT(flag["p_adjusted"].get<double>(), 0.01);
    if (flag["emotion"] == "anger" && flag["versus"] == "rest") {
      anger = true;
      EXPECT_GT(flag["effect"].get<double>(), 1.0);
      EXPECT_EQ(flag["target_closer"], "group_a");
    }
    if (flag["emotion"] == "joy" && flag["versus"] == "rest") {
      joy = true;
      EXPECT_LT(flag["effect"].get<double>(), -1.0);
      EXPECT_EQ(flag["target_closer"], "group_b");
    }
  }
  EXPECT_TRUE(anger && joy) << j["flags"].dump(1);
  for (const auto& t : j["tests"]) {
    EXPECT_TRUE(t["exact"].get<bool>());
    EXPECT_EQ(t["partitions"], 12870);
  }
  const std::string html = read_file(report);
  EXPECT_NE(html.find("For human review"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

TEST(BiasCli, AssociationsOnRandomEmbeddingsFlagNothing) {
  const fs::path lm = tiny_lm(fixture().dir / "lm-random", false);
  const auto f = association_files();
  const auto r = testing::run_cli({"bias", "associations", "--lm", lm.string(), "--targets", f.a.string(),
                                   f.b.string(), "--labels", f.labels.string(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["flags"].empty()) << j["flags"].dump(1);
  EXPECT_EQ(j["tests"].size(), 6u);  // each label vs the rest (no --pairs)
}

TEST(BiasCli, AssociationsWithTokenIdsNeedNoTokenizer) {
  // The fixture folder as is (no tokenizer): every term given as ids.
  std::string a, b, labels;
  for (int i = 0; i < 5; ++i) {
    a += fmt::format("ids: 1 {}\n", 10 + i);
    b += fmt::format("ids: 1 {}\n", 40 + i);
  }
  for (int i = 0; i < 4; ++i) labels += fmt::format("ids: 1 {} {}\n", 100 + i, 200 + i);
  const auto r = testing::run_cli({"bias", "associations", "--lm", testing::fixture("llama-tiny").string(), "--targets",
                                   fixture().write("ids_a.txt", a).string(), fixture().write("ids_b.txt", b).string(),
                                   "--labels", fixture().write("ids_labels.txt", labels).string(), "--json",
                                   "--seed", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["tests"].size(), 4u);
  EXPECT_EQ(j["inputs"]["tokenizer"], "(none: token ids given)");
  // 5 + 5 terms: 252 partitions, smallest two-sided p 2/252; times 4 tests > 0.01: warned.
  EXPECT_NE(j["warnings"].dump().find("smallest possible p-value"), std::string::npos) << j["warnings"].dump();
}

TEST(BiasCli, AssociationsBadInputAreClearErrors) {
  const auto f = association_files();
  const std::string lm = testing::fixture("llama-tiny").string();
  struct Case {
    std::vector<std::string> args;
    std::string expected;
  };
  const std::vector<Case> cases = {
      // Text terms but the folder has no tokenizer.
      {{"--lm", lm, "--targets", f.a.string(), f.b.string(), "--labels", f.labels.string()}, "no tokenizer"},
      {{"--lm", lm, "--targets", fixture().write("empty.txt", "# nothing\n").string(), f.b.string(), "--labels",
        f.labels.string()},
       "empty.txt: no terms"},
      {{"--lm", lm, "--targets", fixture().write("big.txt", "ids: 1 5000\n").string(),
        fixture().write("ok.txt", "ids: 1 2\n").string(), "--labels", fixture().write("l.txt", "ids: 3\nids: 4\n").string()},
       "big.txt: \"ids: 1 5000\": token id 5000 is outside the LM's vocabulary (320 tokens)"},
      {{"--lm", lm, "--targets", f.a.string(), f.b.string(), "--labels", "/nonexistent/labels.txt"},
       "/nonexistent/labels.txt"},
      {{"--lm", "/nonexistent/lm", "--targets", f.a.string(), f.b.string(), "--labels", f.labels.string()},
       "/nonexistent/lm"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"bias", "associations", "--json"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    const auto r = testing::run_cli(args);
    EXPECT_EQ(r.exit_code, 1) << c.expected;
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.err;
  }
  // One target file only: a usage error from the parser.
  const auto one = testing::run_cli({"bias", "associations", "--lm", lm, "--targets", f.a.string(), "--labels",
                                     f.labels.string(), "--json"});
  EXPECT_NE(one.exit_code, 0);
}

}  // namespace
}  // namespace tinyemo
