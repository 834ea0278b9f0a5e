#include "data/generator.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "data/datasets.h"
#include "data/jsonl.h"
#include "io/file.h"
#include "io/image.h"

namespace tinyemo::data {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s, std::string_view chars = " \t\r\n") {
  const size_t b = s.find_first_not_of(chars);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(chars) - b + 1));
}

// A stable 64-bit hash (FNV-1a) so task and prompt choices do not depend on the library.
uint64_t stable_hash(std::string_view s, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ (seed * 0x9E3779B97F4A7C15ull);
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return h;
}

std::string replace_all(std::string s, const std::string& what, const std::string& with) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + with.size())) s.replace(at, what.size(), with);
  return s;
}

// Shared requests-per-minute pacing: request starts at least 60 / rpm s apart.
class RateLimiter {
 public:
  explicit RateLimiter(double rpm) : interval_(rpm > 0 ? 60.0 / rpm : 0.0) {}
  // Waits for this request's slot (returns early when `stop` is set).
  void acquire(const std::atomic<bool>& stop) {
    if (interval_ <= 0) return;
    Clock::time_point slot;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto now = Clock::now();
      next_ = std::max(next_, now);
      slot = next_;
      next_ += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(interval_));
    }
    while (!stop && Clock::now() < slot) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

 private:
  double interval_;
  std::mutex mutex_;
  Clock::time_point next_{};
};

void sleep_for(double seconds, const std::atomic<bool>& stop) {
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (!stop && Clock::now() < until) {
    std::this_thread::sleep_for(std::min<Clock::duration>(until - Clock::now(), std::chrono::milliseconds(50)));
  }
}

}  // namespace

std::vector<GenerationItem> generation_items(const fs::path& dir, const std::string& format,
                                             std::vector<std::pair<std::string, std::string>>* skipped) {
  std::vector<GenerationItem> items;
  if (!format.empty()) {
    const DatasetScan scan = scan_dataset(format, dir);
    for (const auto& i : scan.items) {
      items.push_back({i.key, i.path, i.path.lexically_relative(dir).generic_string(), i.label});
    }
    if (skipped != nullptr) {
      for (const auto& s : scan.skipped) skipped->emplace_back(s.path, s.reason);
    }
  } else {
    std::error_code ec;
    TE_CHECK(fs::is_directory(dir, ec), "{}: not a directory (--images: a <label>/<file> folder)", dir.string());
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
         it != fs::recursive_directory_iterator(); it.increment(ec)) {
      TE_CHECK(!ec, "{}: cannot list: {}", dir.string(), ec.message());
      if (it->path().filename().string().starts_with(".")) {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file(ec)) continue;
      const fs::path rel = it->path().lexically_relative(dir);
      if (!has_image_extension(it->path())) {
        if (skipped != nullptr) skipped->emplace_back(rel.generic_string(), "not an image file");
        continue;
      }
      items.push_back({(rel.parent_path() / rel.stem()).generic_string(), it->path(), rel.generic_string(),
                       rel.has_parent_path() ? rel.begin()->string() : ""});
    }
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (size_t i = 1; i < items.size(); ++i) {
    TE_CHECK(items[i].id != items[i - 1].id, "{} and {}: two images with one id ({}); rename one", items[i - 1].image,
             items[i].image, items[i].id);
  }
  return items;
}

PromptSet PromptSet::defaults() {
  PromptSet p;
  // TinyEmo's three pre-training tasks. Its generation prompts are not
  // released; these are ours (replace them with --prompts FILE).
  p.tasks["caption"] = {"Describe this image in detail.", "Write a short caption for this image.",
                        "What is happening in this picture?"};
  p.tasks["vqa"] = {"What is the main subject of this image, and what is it doing?",
                    "Where does this scene take place? Describe the setting.",
                    "What objects and people can you see in this image?"};
  p.tasks["sentiment"] = {"What emotion does this image evoke, and why?",
                          "How would a viewer feel looking at this image? Explain briefly.",
                          "Is the overall sentiment of this image positive or negative? Explain."};
  p.mix = {{"caption", 1.0}, {"vqa", 1.0}, {"sentiment", 1.0}};
  // The EmoReason prompt as in TinyEmo's released fine-tuning data.
  p.emoreason =
      "Provide emotional reasoning about the image, on what you feel and how is the depicted emotion. Also choose the "
      "emotion that best corresponds to the image from the following options:\n\nLabels: {labels}\n\nImportant: note "
      "that the correct label is {label}.";
  return p;
}

void PromptSet::validate(const std::string& where) const {
  TE_CHECK(!mix.empty(), "{}: the task mix is empty", where);
  for (const auto& [task, weight] : mix) {
    TE_CHECK(weight > 0 && std::isfinite(weight), "{}: task {} has weight {}; weights must be positive", where, task, weight);
    TE_CHECK(tasks.count(task) && !tasks.at(task).empty(), "{}: task {} is in the mix but has no prompts", where, task);
    for (const auto& prompt : tasks.at(task)) TE_CHECK(!trim(prompt).empty(), "{}: task {} has an empty prompt", where, task);
  }
  TE_CHECK(emoreason.find("{label}") != std::string::npos && emoreason.find("{labels}") != std::string::npos,
           "{}: the emoreason prompt needs {{labels}} and {{label}}", where);
}

PromptSet PromptSet::load(const fs::path& file) {
  PromptSet p = defaults();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(file));
    if (j.contains("tasks")) p.tasks = j.at("tasks").get<std::map<std::string, std::vector<std::string>>>();
    if (j.contains("mix")) p.mix = j.at("mix").get<std::map<std::string, double>>();
    if (j.contains("emoreason")) p.emoreason = j.at("emoreason").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    fail("{}: expected {{\"tasks\": {{task: [prompt, ...]}}, \"mix\": {{task: weight}}, \"emoreason\": \"...\"}} ({})",
         file.string(), e.what());
  }
  if (j.contains("tasks") && !j.contains("mix")) {
    p.mix.clear();
    for (const auto& [task, prompts] : p.tasks) p.mix[task] = 1.0;
  }
  p.validate(file.string());
  return p;
}

std::string format_label_list(const std::vector<std::string>& labels) {
  std::string s = "[";
  for (size_t i = 0; i < labels.size(); ++i) s += (i ? ", '" : "'") + labels[i] + "'";
  return s + "]";
}

std::string emoreason_prompt(const PromptSet& prompts, const std::vector<std::string>& labels, const std::string& label) {
  return replace_all(replace_all(prompts.emoreason, "{labels}", format_label_list(labels)), "{label}", label);
}

EmoReasonAnswer parse_emoreason(const std::string& answer, const std::vector<std::string>& labels,
                                const std::string& label) {
  EmoReasonAnswer a;
  const std::string low = lower(answer);
  const size_t at = low.rfind("predicted label:");
  if (at == std::string::npos) {
    a.error = "does not parse: no \"Predicted Label:\"";
    return a;
  }
  a.predicted = trim(answer.substr(at + std::string("predicted label:").size()), " \t\r\n*\"'`[].");
  std::string head = trim(answer.substr(0, at), " \t\r\n*");
  const size_t r = lower(head).find("reasoning:");
  if (r == std::string::npos) {
    a.error = "does not parse: no \"Reasoning:\"";
    return a;
  }
  a.reasoning = trim(head.substr(r + std::string("reasoning:").size()), " \t\r\n*");
  if (a.reasoning.empty()) {
    a.error = "does not parse: empty reasoning";
    return a;
  }
  const std::string predicted = lower(a.predicted);
  if (predicted == lower(label)) return a;
  for (const auto& l : labels) {
    if (predicted == lower(l)) {
      a.error = "names another label";
      return a;
    }
  }
  a.error = "names no candidate label";
  return a;
}

nlohmann::json GenerationSummary::to_json() const {
  return {{"items", items},
          {"already_done", already_done},
          {"written", written},
          {"rejected", rejected},
          {"failed", failed},
          {"requests", requests},
          {"retries", retries},
          {"retried_by_reason", retried_by_reason},
          {"rejected_by_reason", rejected_by_reason},
          {"failed_by_reason", failed_by_reason},
          {"dropped_partial_bytes", dropped_partial_bytes},
          {"seconds", seconds}};
}

GenerationSummary run_generator(const std::vector<GenerationItem>& items, const GeneratorOptions& o,
                                const std::function<void(const GenerationProgress&)>& progress) {
  TE_CHECK(o.concurrency >= 1, "--concurrency must be at least 1");
  TE_CHECK(o.retries >= 0, "--retries must be >= 0");
  TE_CHECK(o.requests_per_minute >= 0, "--rpm must be >= 0");
  o.prompts.validate("prompts");
  const bool emo = o.kind == GenerationKind::EmoReason;
  if (emo) {
    TE_CHECK(!o.labels.empty(), "emoreason needs the candidate labels (--labels)");
    for (const auto& item : items) {
      TE_CHECK(std::find(o.labels.begin(), o.labels.end(), item.label) != o.labels.end(),
               "{}: label \"{}\" is not among the candidate labels {}", item.image, item.label,
               format_label_list(o.labels));
    }
  }
  const TeacherClient teacher(o.teacher);
  JsonlLog out(o.out, o.sync);
  std::optional<JsonlLog> rejects;
  if (emo) rejects.emplace(o.rejects.empty() ? fs::path(o.out.string() + ".rejects") : o.rejects, o.sync);

  GenerationSummary summary;
  summary.items = static_cast<int64_t>(items.size());
  summary.dropped_partial_bytes = out.dropped_bytes() + (rejects ? rejects->dropped_bytes() : 0);
  std::vector<const GenerationItem*> pending;
  for (const auto& item : items) {
    if (out.contains(item.id) || (rejects && rejects->contains(item.id))) {
      ++summary.already_done;
    } else {
      pending.push_back(&item);
    }
  }
  // The task mix: cumulative weights.
  std::vector<std::pair<std::string, double>> mix(o.prompts.mix.begin(), o.prompts.mix.end());
  double mix_total = 0.0;
  for (auto& [task, w] : mix) w = (mix_total += w);

  const auto start = Clock::now();
  std::mutex mutex;  // summary, progress
  std::atomic<size_t> next{0};
  std::atomic<int64_t> written{0};
  std::atomic<bool> stop{false};
  std::string fatal;
  RateLimiter limiter(o.requests_per_minute);
  int64_t finished = 0;
  auto report = [&](const std::string& message) {
    if (progress) progress({finished, static_cast<int64_t>(pending.size()), message});
  };

  auto worker = [&](int index) {
    Rng jitter = Rng::stream(o.seed, static_cast<uint64_t>(index));  // backoff jitter, one stream per worker
    while (!stop) {
      if (o.limit > 0 && written.load() >= o.limit) return;
      const size_t k = next++;
      if (k >= pending.size()) return;
      const GenerationItem& item = *pending[k];
      std::string prompt, task;
      if (emo) {
        task = "emoreason";
        prompt = emoreason_prompt(o.prompts, o.labels, item.label);
      } else {
        const double u = static_cast<double>(stable_hash(item.id, o.seed) >> 11) * 0x1.0p-53 * mix_total;
        task = std::find_if(mix.begin(), mix.end(), [&](const auto& m) { return u < m.second; })->first;
        const auto& prompts = o.prompts.tasks.at(task);
        prompt = prompts[stable_hash(item.id + "#" + task, o.seed) % prompts.size()];
      }
      std::string uri;
      try {
        uri = image_data_uri(item.path, o.max_image_bytes);
      } catch (const Error& e) {
        std::lock_guard<std::mutex> lock(mutex);
        ++summary.failed;
        ++summary.failed_by_reason["image unreadable"];
        ++finished;
        report(fmt::format("failed {}: {}", item.image, e.what()));
        continue;
      }
      std::string last_reason, last_answer;
      bool done = false;
      for (int attempt = 0; attempt <= o.retries && !stop; ++attempt) {
        limiter.acquire(stop);
        if (stop) break;
        const TeacherReply reply = teacher.chat(prompt, uri);
        {
          std::lock_guard<std::mutex> lock(mutex);
          ++summary.requests;
        }
        double wait = std::min(o.backoff_max_s, o.backoff_base_s * std::pow(2.0, attempt));
        wait = wait / 2 + jitter.uniform() * (wait / 2);
        if (reply.status == TeacherStatus::Fatal) {
          std::lock_guard<std::mutex> lock(mutex);
          if (fatal.empty()) fatal = fmt::format("teacher {}: {} (check --teacher, --teacher-model and the key)",
                                                 o.teacher.base_url, reply.detail);
          stop = true;
          return;
        }
        if (reply.status == TeacherStatus::ClientError) {
          last_reason = "teacher refused the request (" + std::to_string(reply.http_status) + ")";
          last_answer = reply.detail;
          break;  // the same request would be refused again
        }
        if (reply.status != TeacherStatus::Ok) {
          last_reason = teacher_status_name(reply.status);
          last_answer = reply.detail;
          if (reply.retry_after_s) wait = std::max(wait, std::min(*reply.retry_after_s, o.max_retry_after_s));
        } else if (emo) {
          const EmoReasonAnswer a = parse_emoreason(reply.content, o.labels, item.label);
          if (a.error.empty()) {
            done = true;
            last_answer = reply.content;
          } else {
            last_reason = a.error.starts_with("does not parse") ? "does not parse" : a.error;
            last_answer = reply.content;
          }
        } else {
          done = true;
          last_answer = reply.content;
        }
        if (done) break;
        if (attempt < o.retries) {
          {
            std::lock_guard<std::mutex> lock(mutex);
            ++summary.retries;
            ++summary.retried_by_reason[last_reason];
            report(fmt::format("retry {} of {} for {}: {}; waiting {:.1f} s", attempt + 1, o.retries, item.image,
                               last_reason, wait));
          }
          sleep_for(wait, stop);
        }
      }
      if (stop && !done) return;
      if (done) {
        nlohmann::json record = {{"id", item.id},
                                 {"image", item.image},
                                 {"conversations",
                                  {{{"from", "human"}, {"value", "<image>\n" + prompt}},
                                   {{"from", "gpt"}, {"value", last_answer}}}},
                                 {"task", task},
                                 {"teacher", o.teacher.model}};
        if (!item.label.empty()) record["label"] = item.label;
        out.append(record);
        ++written;
        std::lock_guard<std::mutex> lock(mutex);
        ++summary.written;
        ++finished;
        report("");
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex);
      const bool answer_problem = emo && (last_reason == "does not parse" || last_reason == "names another label" ||
                                          last_reason == "names no candidate label");
      if (answer_problem) {
        rejects->append({{"id", item.id},
                         {"image", item.image},
                         {"label", item.label},
                         {"reason", last_reason},
                         {"answer", last_answer},
                         {"attempts", o.retries + 1}});
        ++summary.rejected;
        ++summary.rejected_by_reason[last_reason];
        ++finished;
        report(fmt::format("rejected {}: {}", item.image, last_reason));
      } else {
        ++summary.failed;
        ++summary.failed_by_reason[last_reason];
        ++finished;
        report(fmt::format("failed {}: {} ({}); left for the next run", item.image, last_reason, last_answer));
      }
    }
  };
  std::vector<std::thread> threads;
  const int n = static_cast<int>(std::min<size_t>(static_cast<size_t>(o.concurrency), std::max<size_t>(pending.size(), 1)));
  for (int i = 0; i < n; ++i) threads.emplace_back(worker, i);
  for (auto& t : threads) t.join();
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  TE_CHECK(fatal.empty(), "{}", fatal);
  return summary;
}

nlohmann::json generation_stats(const fs::path& jsonl, const std::optional<fs::path>& rejects) {
  std::error_code ec;
  TE_CHECK(fs::is_regular_file(jsonl, ec), "{}: no such file", jsonl.string());
  const std::vector<nlohmann::json> records = read_jsonl(jsonl);
  std::map<std::string, int64_t> ids, tasks, labels, teachers;
  int64_t answer_chars = 0, min_chars = -1, max_chars = 0, malformed = 0;
  for (const auto& r : records) {
    ++ids[r["id"].get<std::string>()];
    if (r.contains("task") && r["task"].is_string()) ++tasks[r["task"].get<std::string>()];
    if (r.contains("label") && r["label"].is_string()) ++labels[r["label"].get<std::string>()];
    if (r.contains("teacher") && r["teacher"].is_string()) ++teachers[r["teacher"].get<std::string>()];
    const auto* conv = r.contains("conversations") ? &r["conversations"] : nullptr;
    if (conv == nullptr || !conv->is_array() || conv->size() < 2 || !(*conv)[1].contains("value") ||
        !(*conv)[1]["value"].is_string()) {
      ++malformed;
      continue;
    }
    const auto n = static_cast<int64_t>((*conv)[1]["value"].get<std::string>().size());
    answer_chars += n;
    min_chars = min_chars < 0 ? n : std::min(min_chars, n);
    max_chars = std::max(max_chars, n);
  }
  int64_t repeated = 0;
  for (const auto& [id, n] : ids) repeated += n - 1;
  const int64_t size = static_cast<int64_t>(fs::file_size(jsonl, ec));
  std::string content_tail;
  int64_t partial = 0;
  {
    const std::string bytes = read_file(jsonl);
    const size_t last_newline = bytes.rfind('\n');
    partial = static_cast<int64_t>(bytes.size() - (last_newline == std::string::npos ? 0 : last_newline + 1));
  }
  const int64_t good = static_cast<int64_t>(records.size()) - malformed;
  nlohmann::json j = {{"file", jsonl.string()},
                      {"bytes", size},
                      {"records", records.size()},
                      {"unique_ids", ids.size()},
                      {"repeated_ids", repeated},
                      {"records_without_conversation", malformed},
                      {"partial_last_line_bytes", partial},
                      {"by_task", tasks},
                      {"by_label", labels},
                      {"by_teacher", teachers},
                      {"answer_chars", {{"mean", good > 0 ? static_cast<double>(answer_chars) / static_cast<double>(good) : 0.0},
                                        {"min", std::max<int64_t>(min_chars, 0)},
                                        {"max", max_chars}}}};
  if (rejects) {
    std::map<std::string, int64_t> reasons;
    int64_t n = 0;
    if (fs::is_regular_file(*rejects, ec)) {
      for (const auto& r : read_jsonl(*rejects)) {
        ++n;
        ++reasons[r.value("reason", std::string("?"))];
      }
    }
    j["rejects"] = {{"file", rejects->string()}, {"records", n}, {"by_reason", reasons}};
  }
  return j;
}

int64_t export_llava_json(const fs::path& jsonl, const fs::path& out) {
  std::vector<nlohmann::json> records = read_jsonl(jsonl);
  std::sort(records.begin(), records.end(),
            [](const auto& a, const auto& b) { return a["id"].template get<std::string>() < b["id"].template get<std::string>(); });
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    TE_CHECK(i == 0 || r["id"] != records[i - 1]["id"], "{}: id {} appears more than once; nothing exported",
             jsonl.string(), r["id"].get<std::string>());
    TE_CHECK(r.contains("image") && r["image"].is_string() && r.contains("conversations") && r["conversations"].is_array(),
             "{}: record {} lacks image or conversations", jsonl.string(), r["id"].get<std::string>());
  }
  AtomicFile file(out);
  file.write("[\n");
  for (size_t i = 0; i < records.size(); ++i) {
    const auto& r = records[i];
    const nlohmann::json llava = {{"id", r["id"]}, {"image", r["image"]}, {"conversations", r["conversations"]}};
    file.write(llava.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    file.write(i + 1 < records.size() ? ",\n" : "\n");
  }
  file.write("]\n");
  file.commit();
  return static_cast<int64_t>(records.size());
}

}  // namespace tinyemo::data
