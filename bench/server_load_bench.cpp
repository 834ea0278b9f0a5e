// Load on `tinyemo serve` over loopback, bounded in time and requests.
//
//   server_load_bench [--seconds 60] [--rounds 3] [--clients 1,8,32] [--leak-requests 10000]
//                     [--chat-clients 8] [--chat-tokens 64] [--threads N]
//
// Starts the built server on the shared fixtures (CLIP clip-vision-small, a
// projector written here, llama-tiny with a SentencePiece tokenizer trained
// here) and measures:
//   - classify (one image per request, JSON data URI) at each client count,
//     --rounds rounds of --seconds each: throughput, p50/p99 latency, errors;
//     the peer is the same work in-process through the C API (decode + CLIP +
//     projector, one caller), run for --seconds just before each server round
//     (alternated, so a change in the machine's load hits both), and
//     `vs_in_process` (the median of the per-round ratios) is what HTTP, JSON,
//     base64 and queueing cost or what batching across clients gains;
//   - resident memory after the first 100 image requests and after
//     --leak-requests (the leak class of llama-server #27725 / #23446);
//   - streaming chat with --parallel 2 and --chat-clients clients at once:
//     every stream complete ("data: [DONE]") and each answer equal to the same
//     request served alone (greedy), with tokens/s and time to first token.
// Prints one JSON object. Timings on a shared machine are noisy: rerun quietly.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include "bench_util.h"
#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

struct Options {
  double seconds = 60;
  std::vector<int> clients = {1, 8, 32};
  int leak_requests = 10000;
  int chat_clients = 8;
  int chat_tokens = 64;
  int threads = 0;
  int rounds = 3;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : (v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]));
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

std::vector<std::string> classify_bodies() {
  std::vector<std::string> bodies;
  for (const char* f : {"rocket.jpg", "chelsea.png", "camera.png", "coffee.png"}) {
    bodies.push_back(json({{"images", {data_uri(Workspace::get().images / f)}}}).dump());
  }
  return bodies;
}

// `clients` threads, each on a kept-alive connection, for `seconds` or `max_requests` in all.
json classify_load(const ServerProcess& s, int clients, double seconds, int64_t max_requests) {
  const std::vector<std::string> bodies = classify_bodies();
  std::atomic<int64_t> issued{0}, errors{0};
  std::mutex mutex;
  std::vector<double> latencies;
  const double start = bench::now_seconds();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto client = s.client(120);
      client.set_keep_alive(true);
      std::vector<double> mine;
      for (int64_t i; (i = issued++) < max_requests && bench::now_seconds() - start < seconds;) {
        const double t0 = bench::now_seconds();
        const auto r = client.Post("/v1/classify", bodies[static_cast<size_t>(i + c) % bodies.size()],
                                   "application/json");
        mine.push_back(bench::now_seconds() - t0);
        if (!r || r->status != 200) ++errors;
      }
      std::lock_guard<std::mutex> lock(mutex);
      latencies.insert(latencies.end(), mine.begin(), mine.end());
    });
  }
  for (auto& t : threads) t.join();
  const double elapsed = bench::now_seconds() - start;
  return {{"clients", clients},
          {"seconds", elapsed},
          {"requests", latencies.size()},
          {"errors", errors.load()},
          {"throughput_rps", static_cast<double>(latencies.size()) / elapsed},
          {"p50_ms", 1e3 * percentile(latencies, 0.50)},
          {"p99_ms", 1e3 * percentile(latencies, 0.99)}};
}

// The same work in-process: decode + CLIP + projector on one image per call.
json in_process_peer(double seconds, int threads) {
  const Workspace& w = Workspace::get();
  te_clip_params p = te_clip_default_params();
  p.n_threads = threads;
  te::Clip clip = te::Clip::load(w.clip.string(), p);
  te::Projector projector = te::Projector::load(w.projector.string());
  std::vector<std::string> files;
  for (const char* f : {"rocket.jpg", "chelsea.png", "camera.png", "coffee.png"}) {
    files.push_back(read_file(w.images / f));
  }
  int64_t n = 0;
  const double start = bench::now_seconds();
  while (bench::now_seconds() - start < seconds) {
    const std::string& bytes = files[static_cast<size_t>(n) % files.size()];
    const te::Image image = te::Image::decode(bytes.data(), bytes.size());
    const std::vector<float> e = clip.embed({&image});
    std::vector<float> probabilities(3);
    te::check(te_projector_classify(projector.get(), e.data(), 1, e.size(), nullptr, probabilities.data(), nullptr,
                                    nullptr));
    ++n;
  }
  const double elapsed = bench::now_seconds() - start;
  return {{"images", n}, {"seconds", elapsed}, {"throughput_ips", static_cast<double>(n) / elapsed}};
}

struct Stream {
  std::string text;
  bool done = false;
  double first_token_s = -1, total_s = 0;
  int64_t tokens = 0;
};

Stream stream_chat(const ServerProcess& s, const std::string& prompt, int max_tokens) {
  Stream out;
  std::string pending;
  auto c = s.client(300);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = json({{"messages", {{{"role", "user"}, {"content", prompt}}}},
                   {"temperature", 0},
                   {"max_tokens", max_tokens},
                   {"ignore_eos", true},
                   {"stream", true},
                   {"stream_options", {{"include_usage", true}}}})
                 .dump();
  req.set_header("Content-Type", "application/json");
  const double start = bench::now_seconds();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    pending.append(data, n);
    for (size_t end; (end = pending.find("\n\n")) != std::string::npos;) {
      const std::string event = pending.substr(0, end);
      pending.erase(0, end + 2);
      if (event == "data: [DONE]") {
        out.done = true;
      } else if (event.rfind("data: ", 0) == 0) {
        const json j = json::parse(event.substr(6), nullptr, false);
        if (j.contains("usage")) out.tokens = j["usage"]["completion_tokens"];
        if (j.contains("choices") && !j["choices"].empty() && j["choices"][0]["delta"].contains("content")) {
          const std::string piece = j["choices"][0]["delta"]["content"];
          if (!piece.empty() && out.first_token_s < 0) out.first_token_s = bench::now_seconds() - start;
          out.text += piece;
        }
      }
    }
    return true;
  };
  c.send(req);
  out.total_s = bench::now_seconds() - start;
  return out;
}

json chat_load(const ServerProcess& s, int clients, int max_tokens) {
  std::vector<std::string> prompts;
  for (int i = 0; i < clients; ++i) prompts.push_back("story number " + std::to_string(i) + " about a happy dog");
  std::vector<Stream> alone;
  for (const auto& p : prompts) alone.push_back(stream_chat(s, p, max_tokens));
  std::vector<Stream> together(prompts.size());
  const double start = bench::now_seconds();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) {
    threads.emplace_back([&, i] { together[i] = stream_chat(s, prompts[i], max_tokens); });
  }
  for (auto& t : threads) t.join();
  const double elapsed = bench::now_seconds() - start;
  int complete = 0, equal = 0;
  int64_t tokens = 0;
  std::vector<double> ttft;
  for (size_t i = 0; i < prompts.size(); ++i) {
    complete += together[i].done ? 1 : 0;
    equal += together[i].done && together[i].text == alone[i].text ? 1 : 0;
    tokens += together[i].tokens;
    ttft.push_back(together[i].first_token_s);
  }
  return {{"parallel", 2},
          {"clients", clients},
          {"max_tokens", max_tokens},
          {"seconds", elapsed},
          {"streams_complete", complete},
          {"answers_equal_to_served_alone", equal},
          {"tokens", tokens},
          {"tokens_per_second", static_cast<double>(tokens) / elapsed},
          {"time_to_first_token_p50_ms", 1e3 * percentile(ttft, 0.5)},
          {"time_to_first_token_max_ms", 1e3 * percentile(ttft, 1.0)}};
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoi(item));
  return out;
}

int run(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--seconds") o.seconds = std::stod(v);
    else if (a == "--clients") o.clients = parse_list(v);
    else if (a == "--leak-requests") o.leak_requests = std::stoi(v);
    else if (a == "--chat-clients") o.chat_clients = std::stoi(v);
    else if (a == "--chat-tokens") o.chat_tokens = std::stoi(v);
    else if (a == "--threads") o.threads = std::stoi(v);
    else if (a == "--rounds") o.rounds = std::max(1, std::stoi(v));
    else throw std::runtime_error("unknown option " + a);
  }
  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::thread::hardware_concurrency());
  const Workspace& w = Workspace::get();
  ServerProcess server({"--clip", w.clip.string(), "--projector", w.projector.string(), "--lm", w.lm.string(),
                        "--parallel", "2", "--threads", std::to_string(threads), "--queue", "64", "--timeout-s",
                        "600"});
  if (!server.wait_ready(120)) throw std::runtime_error("the server did not get ready:\n" + server.log());

  json report = {{"bench", "server_load"},
                 {"machine", bench::machine_info()},
                 {"threads_per_model", threads},
                 {"fixtures", {{"clip", "clip-vision-small (224 px, 48-d)"}, {"lm", "llama-tiny"}}},
                 {"note", "loopback; one image per classify request; noisy on a shared machine"}};

  // Memory first, on a fresh server: after 100 image requests, then after all.
  json memory;
  // The curve (resident memory after every tenth of the requests) tells a
  // leak, which keeps climbing, from allocator warm-up, which levels off.
  classify_load(server, 8, 1e9, 100);
  const int64_t rss_100 = server.rss_kb();
  json curve = json::array({{{"requests", 100}, {"rss_kb", rss_100}}});
  int64_t done = 100, errors = 0;
  const int64_t step = std::max<int64_t>(1, (o.leak_requests - 100) / 10);
  while (done < o.leak_requests) {
    const int64_t n = std::min(step, o.leak_requests - done);
    errors += classify_load(server, 8, 1e9, n)["errors"].get<int64_t>();
    done += n;
    curve.push_back({{"requests", done}, {"rss_kb", server.rss_kb()}});
  }
  const int64_t rss_all = server.rss_kb();
  memory = {{"requests", o.leak_requests},
            {"errors", errors},
            {"rss_curve", curve},
            {"rss_after_100_kb", rss_100},
            {"rss_after_all_kb", rss_all},
            {"ratio", static_cast<double>(rss_all) / static_cast<double>(rss_100)}};
  report["memory"] = memory;

  json levels = json::array();
  for (const int c : o.clients) {
    json rounds = json::array();
    std::vector<double> rps, ips, ratios, p50, p99;
    int64_t errors = 0;
    for (int r = 0; r < o.rounds; ++r) {
      const json peer = in_process_peer(o.seconds, threads);
      const json level = classify_load(server, c, o.seconds, 1'000'000'000);
      rps.push_back(level["throughput_rps"].get<double>());
      ips.push_back(peer["throughput_ips"].get<double>());
      ratios.push_back(rps.back() / ips.back());
      p50.push_back(level["p50_ms"].get<double>());
      p99.push_back(level["p99_ms"].get<double>());
      errors += level["errors"].get<int64_t>();
      rounds.push_back({{"server", level}, {"in_process_peer", peer}, {"vs_in_process", ratios.back()}});
    }
    levels.push_back({{"clients", c},
                      {"rounds", rounds},
                      {"errors", errors},
                      {"median_throughput_rps", median(rps)},
                      {"median_in_process_ips", median(ips)},
                      {"median_p50_ms", median(p50)},
                      {"median_p99_ms", median(p99)},
                      {"vs_in_process", median(ratios)}});
  }
  report["classify"] = levels;
  if (o.chat_clients > 0) report["chat"] = chat_load(server, o.chat_clients, o.chat_tokens);
  report["server_exit"] = server.stop();
  std::printf("%s\n", report.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace tinyemo::server_test

int main(int argc, char** argv) {
  try {
    return tinyemo::server_test::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "server_load_bench: %s\n", e.what());
    return 1;
  }
}
