// Many classify requests at once (batched across clients by the CLIP worker):
// every answer equals the same request served alone, and resident memory
// after many image requests stays within 10 % of what it was after the first
// 100 (the leak class llama-server's #27725 / #23446 reported).
#include <atomic>

#include "server_fixtures.h"

namespace tinyemo::server_test {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitized = true;  // GCC
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitized = true;  // clang
#else
constexpr bool kAddressSanitized = false;
#endif
#else
constexpr bool kAddressSanitized = false;
#endif

json classify(const ServerProcess& s, const std::vector<std::string>& files, const json& labels = nullptr) {
  json images = json::array();
  for (const auto& f : files) images.push_back(data_uri(Workspace::get().images / f));
  json body = {{"images", images}};
  if (!labels.is_null()) body["labels"] = labels;
  auto c = s.client();
  const auto r = c.Post("/v1/classify", body.dump(), "application/json");
  if (!r || r->status != 200) return json();
  return json::parse(r->body)["results"];
}

TEST(ServerLoad, ConcurrentClassifyMatchesEachRequestServedAlone) {
  ServerProcess s(base_args({"--batch", "8"}));
  ASSERT_TRUE(s.wait_ready()) << s.log();
  const std::vector<std::vector<std::string>> requests = {
      {"rocket.jpg"}, {"chelsea.png", "camera.png"}, {"coffee.png", "rocket.jpg", "chelsea.png"}, {"camera.png"}};
  const std::vector<json> label_sets = {nullptr, json({"fear", "joy"})};
  std::vector<json> alone;
  for (const auto& labels : label_sets) {
    for (const auto& files : requests) alone.push_back(classify(s, files, labels));
  }
  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 8; ++t) {
    clients.emplace_back([&, t] {
      for (int i = 0; i < 12; ++i) {
        const size_t k = static_cast<size_t>(t * 5 + i) % alone.size();
        const json got = classify(s, requests[k % requests.size()], label_sets[k / requests.size()]);
        if (got.is_null()) {
          ++failures;
          continue;
        }
        for (size_t j = 0; j < got.size(); ++j) {
          if (got[j]["predicted"] != alone[k][j]["predicted"]) ++mismatches;
          for (const auto& [label, p] : alone[k][j]["scores"].items()) {
            if (std::abs(got[j]["scores"][label].get<double>() - p.get<double>()) > 1e-5) ++mismatches;
          }
        }
      }
    });
  }
  for (auto& c : clients) c.join();
  EXPECT_EQ(failures, 0) << s.log();
  EXPECT_EQ(mismatches, 0);
  EXPECT_EQ(s.stop(), 0) << s.log();
}

TEST(ServerLoad, ResidentMemoryStaysFlatOverManyImageRequests) {
  ServerProcess s(base_args());
  ASSERT_TRUE(s.wait_ready()) << s.log();
  const auto run = [&](int n) {
    std::atomic<int> next{0}, failed{0};
    std::vector<std::thread> clients;
    for (int t = 0; t < 4; ++t) {
      clients.emplace_back([&] {
        const std::vector<std::string> files = {"rocket.jpg", "chelsea.png", "camera.png", "coffee.png"};
        for (int i; (i = next++) < n;) {
          if (classify(s, {files[static_cast<size_t>(i) % files.size()]}).is_null()) ++failed;
        }
      });
    }
    for (auto& c : clients) c.join();
    return failed.load();
  };
  EXPECT_EQ(run(100), 0);
  const int64_t after_100 = s.rss_kb();
  EXPECT_EQ(run(1400), 0);
  const int64_t after_1500 = s.rss_kb();
  ASSERT_GT(after_100, 0);
  if (kAddressSanitized) GTEST_SKIP() << "ASan's quarantine holds freed memory: resident size says nothing here";
  EXPECT_LE(after_1500, after_100 * 11 / 10) << "RSS " << after_100 << " kB after 100 requests, " << after_1500
                                             << " kB after 1500";
  EXPECT_EQ(s.stop(), 0) << s.log();
}

}  // namespace
}  // namespace tinyemo::server_test
