// The instruct-data generator against a teacher on loopback that the test
// controls (fake_teacher.h): the records, resuming, and a teacher that fails
// in every way the generator must survive — timeouts, 429 with Retry-After,
// 5xx, malformed JSON, answers that do not parse or name another label, a
// refused request — plus the rate limit, concurrency, a fatal 401, the
// kill-safe JSON Lines file, stats and the TinyLLaVA export.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "core/error.h"
#include "data/generator.h"
#include "data/jsonl.h"
#include "datasets/fake_teacher.h"
#include "io/file.h"
#include "testing/testing.h"

namespace tinyemo {
namespace {

namespace fs = std::filesystem;
using testing::FakeTeacher;
using testing::TeacherRequest;

std::string good_answer(const std::string& label) {
  return "Reasoning: the scene looks like " + label + ".\n\nPredicted Label: " + label;
}

// The label the EmoReason prompt says is correct.
std::string label_in(const TeacherRequest& r) {
  const std::string text = r.body["messages"][0]["content"][0]["text"];
  const std::string key = "the correct label is ";
  const size_t at = text.rfind(key);
  return text.substr(at + key.size(), text.size() - at - key.size() - 1);
}

data::GeneratorOptions options_for(const FakeTeacher& t, const fs::path& out, data::GenerationKind kind) {
  data::GeneratorOptions o;
  o.kind = kind;
  o.teacher.base_url = t.url();
  o.teacher.model = "teacher-7b";
  o.teacher.api_key = "sk-test";
  o.teacher.timeout_s = 5.0;
  o.out = out;
  o.concurrency = 2;
  o.retries = 3;
  o.backoff_base_s = 0.02;
  o.backoff_max_s = 0.05;
  o.sync = false;
  return o;
}

TEST(Generator, PretrainRecordsAndResume) {
  testing::TempDir d;
  for (const char* f : {"joy/a.jpg", "joy/b.jpg", "fear/c.jpg", "fear/d.jpg", "top.jpg"}) {
    testing::write_fake_image(d / "images" / f, fs::path(f).stem().string());
  }
  write_file_atomic(d / "images/fear/notes.txt", "x");
  FakeTeacher teacher([](const TeacherRequest& r, int, httplib::Response& res) {
    res.set_content(testing::chat_reply("answer about " + r.image_id), "application/json");
  });
  std::vector<std::pair<std::string, std::string>> skipped;
  const auto items = data::generation_items(d / "images", "", &skipped);
  ASSERT_EQ(items.size(), 5u);
  EXPECT_EQ(items[0].id, "fear/c");
  EXPECT_EQ(items[4].id, "top");
  EXPECT_EQ(items[4].label, "");
  ASSERT_EQ(skipped.size(), 1u);
  const data::GeneratorOptions o = options_for(teacher, d / "out.jsonl", data::GenerationKind::Pretrain);
  const data::GenerationSummary s = data::run_generator(items, o);
  EXPECT_EQ(s.written, 5);
  EXPECT_EQ(s.requests, 5);
  EXPECT_EQ(s.retries, 0);
  const auto records = data::read_jsonl(d / "out.jsonl");
  ASSERT_EQ(records.size(), 5u);
  std::map<std::string, nlohmann::json> by_id;
  for (const auto& r : records) by_id[r["id"]] = r;
  const auto& c = by_id.at("fear/c");
  EXPECT_EQ(c["image"], "fear/c.jpg");
  EXPECT_EQ(c["label"], "fear");
  EXPECT_EQ(c["teacher"], "teacher-7b");
  EXPECT_EQ(c["conversations"][0]["from"], "human");
  EXPECT_TRUE(c["conversations"][0]["value"].get<std::string>().starts_with("<image>\n"));
  EXPECT_EQ(c["conversations"][1]["from"], "gpt");
  EXPECT_EQ(c["conversations"][1]["value"], "answer about c");
  // The prompt is one of the chosen task's, deterministically.
  const data::PromptSet p = data::PromptSet::defaults();
  const auto& prompts = p.tasks.at(c["task"].get<std::string>());
  EXPECT_NE(std::find(prompts.begin(), prompts.end(), c["conversations"][0]["value"].get<std::string>().substr(8)),
            prompts.end());
  // The request: the model, the key as a Bearer token, text then the image as a data URI.
  const auto reqs = teacher.requests();
  EXPECT_EQ(reqs[0].body["model"], "teacher-7b");
  EXPECT_EQ(reqs[0].authorization, "Bearer sk-test");
  EXPECT_TRUE(reqs[0].body["messages"][0]["content"][1]["image_url"]["url"].get<std::string>().starts_with(
      "data:image/jpeg;base64,"));
  // Resumed: nothing left, nothing asked.
  const data::GenerationSummary again = data::run_generator(items, o);
  EXPECT_EQ(again.already_done, 5);
  EXPECT_EQ(again.written, 0);
  EXPECT_EQ(teacher.requests().size(), 5u);
  // Another seed may choose other tasks, but the same seed always the same ones.
  testing::TempDir d2;
  data::GeneratorOptions o2 = o;
  o2.out = d2 / "out.jsonl";
  data::run_generator(items, o2);
  for (const auto& r : data::read_jsonl(d2 / "out.jsonl")) EXPECT_EQ(r["task"], by_id.at(r["id"])["task"]);
}

TEST(Generator, SurvivesEveryFailureMode) {
  testing::TempDir d;
  // One image per failure mode, its id naming it.
  const std::vector<std::string> ids = {"timeout", "ratelimit", "server", "malformed", "unparsable", "wronglabel",
                                        "refused", "down"};
  for (const auto& id : ids) testing::write_fake_image(d / "images/anger" / (id + ".jpg"), id);
  testing::write_fake_image(d / "images/joy/fine.jpg", "fine");
  FakeTeacher teacher([](const TeacherRequest& r, int n, httplib::Response& res) {
    const std::string& id = r.image_id;
    const std::string ok = testing::chat_reply(good_answer(label_in(r)));
    if (id == "timeout" && n == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // past the 0.5 s timeout
    } else if (id == "ratelimit" && n == 0) {
      res.status = 429;
      res.set_header("Retry-After", "1");
      return;
    } else if (id == "server" && n < 2) {
      res.status = n == 0 ? 500 : 503;
      res.set_content("busy", "text/plain");
      return;
    } else if (id == "malformed" && n < 2) {
      res.set_content(n == 0 ? "{not json" : R"({"choices": []})", "application/json");
      return;
    } else if (id == "unparsable") {
      res.set_content(testing::chat_reply("I think it is anger."), "application/json");
      return;
    } else if (id == "wronglabel") {
      res.set_content(testing::chat_reply(good_answer("joy")), "application/json");
      return;
    } else if (id == "refused") {
      res.status = 400;
      res.set_content(R"({"error": "image too large"})", "application/json");
      return;
    } else if (id == "down") {
      res.status = 502;
      return;
    }
    res.set_content(ok, "application/json");
  });
  const auto items = data::generation_items(d / "images", "");
  data::GeneratorOptions o = options_for(teacher, d / "out.jsonl", data::GenerationKind::EmoReason);
  o.labels = {"anger", "joy", "fear"};
  o.teacher.timeout_s = 0.5;
  o.concurrency = 4;
  std::vector<std::string> messages;
  const data::GenerationSummary s =
      data::run_generator(items, o, [&](const data::GenerationProgress& p) { messages.push_back(p.message); });

  EXPECT_EQ(s.items, 9);
  EXPECT_EQ(s.written, 5);  // timeout, ratelimit, server, malformed, fine
  EXPECT_EQ(s.rejected, 2);
  EXPECT_EQ(s.failed, 2);
  EXPECT_EQ(s.rejected_by_reason, (std::map<std::string, int64_t>{{"does not parse", 1}, {"names another label", 1}}));
  EXPECT_EQ(s.failed_by_reason.at("HTTP 5xx"), 1);              // "down": 4 tries
  EXPECT_EQ(s.failed_by_reason.at("teacher refused the request (400)"), 1);  // not retried
  EXPECT_EQ(s.retried_by_reason.at("timeout"), 1);
  EXPECT_EQ(s.retried_by_reason.at("HTTP 429"), 1);
  EXPECT_EQ(s.retried_by_reason.at("HTTP 5xx"), 2 + 3);
  EXPECT_EQ(s.retried_by_reason.at("malformed reply"), 2);
  EXPECT_EQ(s.retried_by_reason.at("does not parse"), 3);
  EXPECT_EQ(s.retried_by_reason.at("names another label"), 3);

  // Retry-After: 1 was honoured although the backoff alone is 0.05 s.
  std::vector<double> times;
  std::map<std::string, int> per_image;
  for (const auto& r : teacher.requests()) {
    if (r.image_id == "ratelimit") times.push_back(r.at);
    ++per_image[r.image_id];
  }
  ASSERT_EQ(times.size(), 2u);
  EXPECT_GE(times[1] - times[0], 0.95);
  EXPECT_EQ(per_image.at("refused"), 1);
  EXPECT_EQ(per_image.at("down"), 4);
  EXPECT_EQ(per_image.at("wronglabel"), 4);

  // Written records carry the label the teacher was told; rejects say why.
  for (const auto& r : data::read_jsonl(d / "out.jsonl")) {
    EXPECT_EQ(r["task"], "emoreason");
    const std::string human = r["conversations"][0]["value"];
    EXPECT_NE(human.find("Labels: ['anger', 'joy', 'fear']"), std::string::npos) << human;
    EXPECT_NE(human.find("Important: note that the correct label is " + r["label"].get<std::string>() + "."),
              std::string::npos);
  }
  std::map<std::string, std::string> reasons;
  for (const auto& r : data::read_jsonl(d / "out.jsonl.rejects")) reasons[r["id"]] = r["reason"];
  EXPECT_EQ(reasons, (std::map<std::string, std::string>{{"anger/unparsable", "does not parse"},
                                                        {"anger/wronglabel", "names another label"}}));

  // A second run asks again only for the two that failed.
  const size_t before = teacher.requests().size();
  const data::GenerationSummary again = data::run_generator(items, o);
  EXPECT_EQ(again.already_done, 7);
  EXPECT_EQ(again.failed, 2);
  std::set<std::string> asked;
  for (size_t i = before; i < teacher.requests().size(); ++i) asked.insert(teacher.requests()[i].image_id);
  EXPECT_EQ(asked, (std::set<std::string>{"down", "refused"}));
}

TEST(Generator, RateLimitAndConcurrency) {
  testing::TempDir d;
  for (int i = 0; i < 6; ++i) testing::write_fake_image(d / "images/joy" / (std::to_string(i) + ".jpg"), std::to_string(i));
  const auto items = data::generation_items(d / "images", "");
  {
    // 3 in flight, each reply taking 0.3 s: all 6 in well under 6 x 0.3 s.
    FakeTeacher slow([](const TeacherRequest&, int, httplib::Response& res) {
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      res.set_content(testing::chat_reply("ok"), "application/json");
    });
    data::GeneratorOptions o = options_for(slow, d / "a.jsonl", data::GenerationKind::Pretrain);
    o.concurrency = 3;
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(data::run_generator(items, o).written, 6);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 1.5);
    EXPECT_GE(slow.max_in_flight(), 2);
  }
  {
    // 300 requests per minute: starts at least 0.2 s apart, whatever the concurrency.
    FakeTeacher fast([](const TeacherRequest&, int, httplib::Response& res) {
      res.set_content(testing::chat_reply("ok"), "application/json");
    });
    data::GeneratorOptions o = options_for(fast, d / "b.jsonl", data::GenerationKind::Pretrain);
    o.concurrency = 4;
    o.requests_per_minute = 300;
    EXPECT_EQ(data::run_generator(items, o).written, 6);
    auto reqs = fast.requests();
    std::sort(reqs.begin(), reqs.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
    for (size_t i = 1; i < reqs.size(); ++i) EXPECT_GE(reqs[i].at - reqs[i - 1].at, 0.18) << i;
  }
}

TEST(Generator, FatalReplyStopsTheRun) {
  testing::TempDir d;
  for (int i = 0; i < 4; ++i) testing::write_fake_image(d / "images/joy" / (std::to_string(i) + ".jpg"), std::to_string(i));
  FakeTeacher teacher([](const TeacherRequest&, int, httplib::Response& res) {
    res.status = 401;
    res.set_content(R"({"error": "invalid api key"})", "application/json");
  });
  const data::GeneratorOptions o = options_for(teacher, d / "out.jsonl", data::GenerationKind::Pretrain);
  try {
    data::run_generator(data::generation_items(d / "images", ""), o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 401"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("invalid api key"), std::string::npos) << e.what();
  }
  EXPECT_LE(teacher.requests().size(), 2u);  // the other worker stops too
  EXPECT_TRUE(data::read_jsonl(d / "out.jsonl").empty());
}

TEST(Generator, EmoReasonLabelsMustBeCandidates) {
  testing::TempDir d;
  testing::write_fake_image(d / "images/boredom/x.jpg", "x");
  FakeTeacher teacher([](const TeacherRequest&, int, httplib::Response&) {});
  data::GeneratorOptions o = options_for(teacher, d / "out.jsonl", data::GenerationKind::EmoReason);
  o.labels = {"anger", "joy"};
  EXPECT_THROW(data::run_generator(data::generation_items(d / "images", ""), o), Error);
  EXPECT_TRUE(teacher.requests().empty());
}

TEST(EmoReasonAnswers, Parsing) {
  const std::vector<std::string> labels = {"anger", "joy", "fear"};
  auto p = data::parse_emoreason("Reasoning: a clenched fist.\n\nPredicted Label: anger", labels, "anger");
  EXPECT_EQ(p.error, "");
  EXPECT_EQ(p.reasoning, "a clenched fist.");
  EXPECT_EQ(p.predicted, "anger");
  EXPECT_EQ(data::parse_emoreason("**Reasoning:** x\n\n**Predicted Label:** Anger.", labels, "anger").error, "");
  EXPECT_EQ(data::parse_emoreason("Reasoning: x\n\nPredicted Label: 'joy'", labels, "anger").error, "names another label");
  EXPECT_EQ(data::parse_emoreason("Reasoning: x\n\nPredicted Label: calm", labels, "anger").error,
            "names no candidate label");
  EXPECT_TRUE(data::parse_emoreason("anger", labels, "anger").error.starts_with("does not parse"));
  EXPECT_TRUE(data::parse_emoreason("Predicted Label: anger", labels, "anger").error.starts_with("does not parse"));
  EXPECT_TRUE(data::parse_emoreason("Reasoning:\n\nPredicted Label: anger", labels, "anger").error.starts_with("does not parse"));
  EXPECT_EQ(data::format_label_list({"a", "b"}), "['a', 'b']");
}

TEST(Teacher, RetryAfterBase64AndUrls) {
  EXPECT_EQ(data::parse_retry_after("120", 0.0), 120.0);
  EXPECT_EQ(data::parse_retry_after(" 1.5 ", 0.0), 1.5);
  // Sun, 06 Nov 1994 08:49:37 GMT = 784111777.
  EXPECT_EQ(data::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770.0), 7.0);
  EXPECT_EQ(data::parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111999.0), 0.0);
  EXPECT_FALSE(data::parse_retry_after("soon", 0.0).has_value());
  EXPECT_FALSE(data::parse_retry_after("-3", 0.0).has_value());
  EXPECT_EQ(data::base64_encode(""), "");
  EXPECT_EQ(data::base64_encode("f"), "Zg==");
  EXPECT_EQ(data::base64_encode("fo"), "Zm8=");
  EXPECT_EQ(data::base64_encode("foobar"), "Zm9vYmFy");
  EXPECT_THROW(data::TeacherClient({.base_url = "ftp://x/v1", .model = "m", .api_key = {}}), Error);
  EXPECT_THROW(data::TeacherClient({.base_url = "http://", .model = "m", .api_key = {}}), Error);
  // Nothing listening: a connection error, not an exception.
  data::TeacherConfig c{.base_url = "http://127.0.0.1:1/v1", .model = "m", .api_key = {}};
  c.timeout_s = 1.0;
  const data::TeacherReply r = data::TeacherClient(c).chat("x", "data:image/jpeg;base64,AAAA");
  EXPECT_EQ(r.status, data::TeacherStatus::Connection);
  testing::TempDir d;
  write_file_atomic(d / "x.jpg", "not an image");
  EXPECT_THROW(data::image_data_uri(d / "x.jpg", 1000), Error);
  testing::write_fake_image(d / "y.jpg", "y");
  EXPECT_THROW(data::image_data_uri(d / "y.jpg", 2), Error);  // over the size limit
}

TEST(JsonlLog, CutsAPartialLastLineAndRefusesCorruption) {
  testing::TempDir d;
  write_file_atomic(d / "a.jsonl", "{\"id\": \"x\"}\n{\"id\": \"y\"}\n{\"id\": \"z\", \"ima");
  {
    data::JsonlLog log(d / "a.jsonl", true);
    EXPECT_EQ(log.dropped_bytes(), 16);
    EXPECT_EQ(log.records(), 2);
    EXPECT_TRUE(log.contains("y"));
    EXPECT_FALSE(log.contains("z"));
    log.append({{"id", "z"}, {"v", 1}});
  }
  EXPECT_EQ(read_file(d / "a.jsonl"), "{\"id\": \"x\"}\n{\"id\": \"y\"}\n{\"id\":\"z\",\"v\":1}\n");
  write_file_atomic(d / "b.jsonl", "{\"id\": \"x\"}\nnot json\n{\"id\": \"y\"}\n");
  try {
    data::JsonlLog log(d / "b.jsonl");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("line 2 is not JSON"), std::string::npos) << e.what();
  }
  write_file_atomic(d / "c.jsonl", "[1, 2]\n");
  EXPECT_THROW(data::JsonlLog(d / "c.jsonl"), Error);
}

TEST(GeneratedData, StatsAndExport) {
  testing::TempDir d;
  write_file_atomic(d / "g.jsonl",
                    R"({"id": "joy/b", "image": "joy/b.jpg", "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "abcd"}], "task": "caption", "label": "joy", "teacher": "t"})"
                    "\n"
                    R"({"id": "fear/a", "image": "fear/a.jpg", "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "ab"}], "task": "vqa", "label": "fear", "teacher": "t"})"
                    "\n");
  write_file_atomic(d / "g.rejects", R"({"id": "x", "reason": "does not parse"})" "\n");
  const nlohmann::json s = data::generation_stats(d / "g.jsonl", d / "g.rejects");
  EXPECT_EQ(s["records"], 2);
  EXPECT_EQ(s["repeated_ids"], 0);
  EXPECT_EQ(s["by_task"], nlohmann::json::parse(R"({"caption": 1, "vqa": 1})"));
  EXPECT_EQ(s["answer_chars"]["mean"], 3.0);
  EXPECT_EQ(s["rejects"]["by_reason"]["does not parse"], 1);
  EXPECT_EQ(data::export_llava_json(d / "g.jsonl", d / "train.json"), 2);
  const auto exported = nlohmann::json::parse(read_file(d / "train.json"));
  ASSERT_EQ(exported.size(), 2u);
  EXPECT_EQ(exported[0]["id"], "fear/a");  // sorted by id
  EXPECT_EQ(exported[0].size(), 3u);       // id, image, conversations only
  EXPECT_EQ(exported[1]["conversations"][1]["value"], "abcd");
  // A repeated id is refused.
  write_file_atomic(d / "dup.jsonl", read_file(d / "g.jsonl") + read_file(d / "g.jsonl"));
  EXPECT_THROW(data::export_llava_json(d / "dup.jsonl", d / "dup.json"), Error);
  EXPECT_FALSE(fs::exists(d / "dup.json"));
  EXPECT_EQ(data::generation_stats(d / "dup.jsonl")["repeated_ids"], 2);
}

}  // namespace
}  // namespace tinyemo
