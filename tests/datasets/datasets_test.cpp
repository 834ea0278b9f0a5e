// The eight dataset readers on small generated copies of each layout: labels
// mapped through the taxonomies, split rules, and every kind of entry that is
// skipped with its reason (Abstract's ties and vote parsing, ArtPhoto's
// prefixes, EmotionROI's split lists, EmoSet's records, WEBEmo's levels).
#include <gtest/gtest.h>

#include <cstdlib>
#include <functional>

#include "core/error.h"
#include "data/datasets.h"
#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;

void touch(const fs::path& p) { write_file_atomic(p, "x"); }

using testing::error_of;

// {split: {label: count}} of a scan.
nlohmann::json counts(const data::DatasetScan& s) { return data::scan_summary_json(s)["splits"]; }

// The reason given for the skipped entry whose path contains `path_part`.
std::string reason_for(const data::DatasetScan& s, const std::string& path_part) {
  for (const auto& e : s.skipped) {
    if (e.path.find(path_part) != std::string::npos) return e.reason;
  }
  return "(not skipped)";
}

TEST(Datasets, Emotion6) {
  testing::TempDir d;
  for (const char* f : {"images/anger/1.jpg", "images/anger/2.jpg", "images/joy/3.jpg", "images/Fear/4.png",
                        "images/neutral/5.jpg", "images/joy/notes.txt", "images/.DS_Store", "images/readme.md",
                        "images/joy/.hidden.jpg"}) {
    touch(d / f);
  }
  const data::DatasetScan s = data::scan_dataset("emotion6", d.path());
  EXPECT_EQ(counts(s), nlohmann::json::parse(R"({"all": {"anger": 2, "fear": 1, "joy": 1}})"));
  EXPECT_EQ(s.labels.size(), 6u);
  EXPECT_NE(reason_for(s, "neutral/5.jpg").find("label \"neutral\" is not in taxonomy emotion6"), std::string::npos);
  EXPECT_NE(reason_for(s, "notes.txt").find("not an image"), std::string::npos);
  EXPECT_NE(reason_for(s, "readme.md").find("outside the class folders"), std::string::npos);
  EXPECT_EQ(s.skipped.size(), 3u);  // hidden entries are not listed
  EXPECT_EQ(s.items[0].key, "images/Fear/4");  // sorted by key, byte order
  EXPECT_EQ(s.items[0].label, "fear");
  // The root must hold images/.
  testing::TempDir empty;
  EXPECT_NE(error_of([&] { data::scan_dataset("emotion6", empty.path()); }).find("images/<emotion>"), std::string::npos);
}

TEST(Datasets, EmotionRoiSplitLists) {
  testing::TempDir d;
  for (const char* f : {"images/anger/a1.jpg", "images/anger/a2.jpg", "images/joy/j1.jpg", "images/joy/j2.jpg",
                        "images/joy/unlisted.jpg"}) {
    touch(d / f);
  }
  write_file_atomic(d / "training_testing_split/training.txt", "anger/a1.jpg\njoy/j1.jpg\r\n\njoy/missing.jpg\nbad line\n");
  write_file_atomic(d / "training_testing_split/testing.txt", "anger/a2.jpg\njoy/j2.jpg\njoy/j1.jpg\n../x/y.jpg\n");
  const data::DatasetScan s = data::scan_dataset("emotionroi", d.path());
  EXPECT_EQ(counts(s), nlohmann::json::parse(R"({"train": {"anger": 1, "joy": 1}, "test": {"anger": 1, "joy": 1}})"));
  EXPECT_NE(reason_for(s, "missing.jpg").find("listed in training.txt but missing"), std::string::npos);
  EXPECT_NE(reason_for(s, "training.txt:5").find("not <emotion>/<file>"), std::string::npos);
  EXPECT_NE(reason_for(s, "images/joy/j1.jpg").find("listed again in testing.txt"), std::string::npos);
  EXPECT_NE(reason_for(s, "testing.txt:4").find("not <emotion>/<file>"), std::string::npos);
  EXPECT_NE(reason_for(s, "unlisted.jpg").find("in neither"), std::string::npos);
  EXPECT_EQ(s.splits(), (std::vector<std::string>{"train", "test"}));
  std::filesystem::remove(d / "training_testing_split/testing.txt");
  EXPECT_NE(error_of([&] { data::scan_dataset("emotionroi", d.path()); }).find("testing.txt: not found"),
            std::string::npos);
}

TEST(Datasets, FiFolders) {
  testing::TempDir d;
  for (const char* f : {"amusement/1.jpg", "Awe/2.jpg", "sadness/3.jpeg", "sad/4.jpg", "content/5.webp", "other/6.jpg"}) {
    touch(d / f);
  }
  const data::DatasetScan s = data::scan_dataset("fi", d.path());
  EXPECT_EQ(counts(s),
            nlohmann::json::parse(R"({"all": {"amusement": 1, "awe": 1, "contentment": 1, "sadness": 2}})"));
  EXPECT_NE(reason_for(s, "other/6.jpg").find("not in taxonomy fi"), std::string::npos);
}

TEST(Datasets, ArtPhotoPrefixes) {
  testing::TempDir d;
  for (const char* f : {"sad_1.jpg", "sad_12.jpg", "amusement_3.jpg", "excitement_a_b.jpg", "fear2.jpg", "_x.jpg",
                        "angry_1.jpg", "awe_1.txt"}) {
    touch(d / f);
  }
  const data::DatasetScan s = data::scan_dataset("artphoto", d.path());
  EXPECT_EQ(counts(s), nlohmann::json::parse(R"({"all": {"amusement": 1, "excitement": 1, "sadness": 2}})"));
  EXPECT_NE(reason_for(s, "fear2.jpg").find("no <emotion>_ prefix"), std::string::npos);
  EXPECT_NE(reason_for(s, "_x.jpg").find("no <emotion>_ prefix"), std::string::npos);
  EXPECT_NE(reason_for(s, "angry_1.jpg").find("label \"angry\""), std::string::npos);
  EXPECT_NE(reason_for(s, "awe_1.txt").find("not an image"), std::string::npos);
}

TEST(Datasets, AbstractVotesAsNumbersAndTies) {
  testing::TempDir d;
  write_file_atomic(d / "ABSTRACT_groundTruth.csv",
                    "'','Amusement','Anger','Awe','Content','Disgust','Excitement','Fear','Sad'\n"
                    "'a.jpg',10,9,0,0,0,0,0,0\n"      // 10 > 9 as numbers (as strings "9" > "10")
                    "'b.jpg',2,0,0,2,0,0,0,0\n"       // tie: dropped
                    "'c.jpg',0,0,0,0,0,0,0,0\n"       // no votes
                    "'d.jpg',0,0,0,3,1,0,0,0\n"       // Content -> contentment
                    "'e.jpg',0,0,0,0,0,0,0,'4'\n"     // Sad -> sadness, quoted vote
                    "'missing.jpg',1,0,0,0,0,0,0,0\n"
                    "'f.jpg',1,x,0,0,0,0,0,0\n"
                    "'g.jpg',1,0\n"
                    "\"h.jpg\",0,0,0,0,0,0,7,0.5\n");  // double quotes, decimal votes
  for (const char* f : {"a.jpg", "b.jpg", "c.jpg", "d.jpg", "e.jpg", "f.jpg", "g.jpg", "h.jpg"}) touch(d / f);
  const data::DatasetScan s = data::scan_dataset("abstract", d.path());
  EXPECT_EQ(counts(s),
            nlohmann::json::parse(R"({"all": {"amusement": 1, "contentment": 1, "fear": 1, "sadness": 1}})"));
  EXPECT_EQ(reason_for(s, "b.jpg"), "tie: Amusement, Content with 2 votes each");
  EXPECT_EQ(reason_for(s, "c.jpg"), "no votes");
  EXPECT_NE(reason_for(s, "missing.jpg").find("missing"), std::string::npos);
  EXPECT_NE(reason_for(s, "(f.jpg)").find("vote \"x\" for Anger"), std::string::npos);
  EXPECT_NE(reason_for(s, ":9").find("3 fields, the header has 9"), std::string::npos);
  for (const auto& item : s.items) {
    if (item.key == "a") {
      EXPECT_EQ(item.label, "amusement");
    }
  }
  testing::TempDir none;
  EXPECT_NE(error_of([&] { data::scan_dataset("abstract", none.path()); }).find("ABSTRACT_groundTruth.csv"),
            std::string::npos);
}

TEST(Datasets, UnbiasedEmoSubjects) {
  testing::TempDir d;
  for (const char* f : {"images/anger/man/1.jpg", "images/anger/woman/2.jpg", "images/love/couple/3.jpg",
                        "images/love/4.jpg", "images/hate/x/5.jpg"}) {
    touch(d / f);
  }
  const data::DatasetScan s = data::scan_dataset("unbiasedemo", d.path());
  EXPECT_EQ(counts(s), nlohmann::json::parse(R"({"all": {"anger": 2, "love": 1}})"));
  EXPECT_NE(reason_for(s, "love/4.jpg").find("not in a <subject> folder"), std::string::npos);
  EXPECT_NE(reason_for(s, "hate/x/5.jpg").find("label \"hate\""), std::string::npos);
}

TEST(Datasets, EmoSetJsonRecords) {
  testing::TempDir d;
  for (const char* f : {"image/amusement/amusement_0.jpg", "image/fear/fear_1.jpg", "image/awe/awe_2.jpg"}) {
    touch(d / f);
  }
  write_file_atomic(d / "train.json",
                    R"([["amusement", "image/amusement/amusement_0.jpg"], ["fear", "image/fear/fear_1.jpg"],
                        ["awe", "image/awe/nope.jpg"], ["awe"], 7, ["awe", "../outside.jpg"], ["joy", "image/awe/awe_2.jpg"]])");
  write_file_atomic(d / "test.json", R"([["awe", "image/awe/awe_2.jpg"]])");
  const data::DatasetScan s = data::scan_dataset("emoset", d.path());
  EXPECT_EQ(counts(s), nlohmann::json::parse(R"({"train": {"amusement": 1, "fear": 1}, "test": {"awe": 1}})"));
  EXPECT_NE(reason_for(s, "nope.jpg").find("listed in train.json but missing"), std::string::npos);
  EXPECT_EQ(reason_for(s, "train.json[3]"), "not a [label, path] record");
  EXPECT_EQ(reason_for(s, "train.json[4]"), "not a [label, path] record");
  EXPECT_NE(reason_for(s, "train.json[5]").find("not inside the dataset folder"), std::string::npos);
  // awe_2.jpg listed twice: under an unknown label in train, then in test.
  EXPECT_NE(reason_for(s, "awe_2.jpg").find("label \"joy\""), std::string::npos);
  write_file_atomic(d / "val.json", "{not json");
  EXPECT_NE(error_of([&] { data::scan_dataset("emoset", d.path()); }).find("val.json: not JSON"), std::string::npos);
}

TEST(Datasets, WebEmoSplitsAndLevels) {
  testing::TempDir d;
  const fs::path base = d / "partitioned_WEBEmo_fine";
  for (const char* f : {"train/affection/1.jpg", "train/cheerfullness/2.jpg", "train/rage/3.jpg",
                        "validation/irritabilty/4.jpg", "test/surprise/5.jpg", "test/zest/6.jpg"}) {
    touch(base / f);
  }
  const data::DatasetScan fine = data::scan_dataset("webemo", d.path());
  EXPECT_EQ(counts(fine), nlohmann::json::parse(R"({"train": {"affection": 1, "cheerfulness": 1, "rage": 1},
      "val": {"irritability": 1}, "test": {"surprise": 1, "zest": 1}})"));
  EXPECT_EQ(fine.labels.size(), 25u);
  data::ScanOptions seven;
  seven.level = "7";
  const data::DatasetScan mid = data::scan_dataset("webemo", base, seven);  // the partitioned folder itself works too
  EXPECT_EQ(counts(mid), nlohmann::json::parse(R"({"train": {"love": 1, "joy": 1, "anger": 1},
      "val": {"anger": 1}, "test": {"surprise": 1, "joy": 1}})"));
  EXPECT_EQ(mid.labels.size(), 7u);
  data::ScanOptions two;
  two.level = "2";
  EXPECT_EQ(data::scan_dataset("webemo", d.path(), two).labels, (std::vector<std::string>{"positive", "negative"}));
  data::ScanOptions bad;
  bad.level = "3";
  EXPECT_NE(error_of([&] { data::scan_dataset("webemo", d.path(), bad); }).find("no level \"3\" (levels: 2, 7)"),
            std::string::npos);
}

TEST(Datasets, UnknownFormatAndMissingRoot) {
  EXPECT_NE(error_of([] { data::scan_dataset("imagenet", "/tmp"); }).find("unknown dataset format \"imagenet\""),
            std::string::npos);
  EXPECT_NE(error_of([] { data::scan_dataset("fi", "/no/such/dir"); }).find("not a directory"), std::string::npos);
}

TEST(Taxonomies, BuiltInsAreValid) {
  const auto names = data::builtin_taxonomy_names();
  EXPECT_EQ(names.size(), 8u);
  for (const auto& f : data::dataset_formats()) {
    const data::Taxonomy t = data::load_taxonomy(f);
    EXPECT_EQ(t.name, f);
    EXPECT_FALSE(t.labels.empty());
  }
  EXPECT_EQ(data::load_taxonomy("emotion6").labels,
            (std::vector<std::string>{"anger", "disgust", "fear", "joy", "sadness", "surprise"}));
  EXPECT_EQ(data::load_taxonomy("fi").labels.size(), 8u);
}

TEST(Taxonomies, UserFilesOverrideAndAdd) {
  testing::TempDir d;
  // An edited Emotion6 with "neutral" added, and a new taxonomy.
  write_file_atomic(d / "emotion6.json",
                    R"({"name": "emotion6", "labels": ["anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral"]})");
  write_file_atomic(d / "mine.json", R"({"name": "mine", "labels": ["good", "bad"], "aliases": {"happy": "good"}})");
  EXPECT_EQ(data::load_taxonomy("emotion6", d.path()).labels.size(), 7u);
  EXPECT_EQ(data::load_taxonomy("mine", d.path()).resolve("happy"), "good");
  EXPECT_EQ(data::load_taxonomy((d / "mine.json").string()).labels.size(), 2u);
  ::setenv("TINYEMO_TAXONOMIES", d.path().c_str(), 1);
  EXPECT_EQ(data::load_taxonomy("emotion6").labels.size(), 7u);
  ::unsetenv("TINYEMO_TAXONOMIES");
  EXPECT_EQ(data::load_taxonomy("emotion6").labels.size(), 6u);

  // A scan with the edited taxonomy keeps the neutral folder.
  testing::TempDir ds;
  touch(ds / "images/neutral/1.jpg");
  data::ScanOptions o;
  o.taxonomies = d.path();
  EXPECT_EQ(counts(data::scan_dataset("emotion6", ds.path(), o)), nlohmann::json::parse(R"({"all": {"neutral": 1}})"));

  auto bad = [&](const std::string& json) {
    write_file_atomic(d / "bad.json", json);
    return error_of([&] { data::load_taxonomy((d / "bad.json").string()); });
  };
  EXPECT_NE(bad(R"({"name": "x", "labels": ["a", "a"]})").find("listed twice"), std::string::npos);
  EXPECT_NE(bad(R"({"name": "x", "labels": ["a"], "aliases": {"b": "c"}})").find("not a label"), std::string::npos);
  EXPECT_NE(bad(R"({"name": "x", "labels": ["a", "b"], "levels": {"2": {"a": "p"}}})").find("leaves label \"b\" out"),
            std::string::npos);
  EXPECT_NE(bad(R"({"name": "x", "labels": []})").find("no labels"), std::string::npos);
  EXPECT_NE(bad(R"({"name": "x", "labels": [1]})").find("bad.json"), std::string::npos);
  EXPECT_NE(bad("[").find("not JSON"), std::string::npos);
  EXPECT_NE(error_of([] { data::load_taxonomy("nope"); }).find("no taxonomy \"nope\""), std::string::npos);
}

}  // namespace
}  // namespace tinyemo
