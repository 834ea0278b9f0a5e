// The server's request parsing called directly (no sockets): base64, data
// URIs, the JSON bodies and form parts of each route, and the limits.
#include <gtest/gtest.h>

#include <random>

#include "chat_template.h"
#include "request_parsing.h"

namespace tinyemo::server {
namespace {

using nlohmann::json;

int status_of(const std::function<void()>& f, std::string* code = nullptr) {
  try {
    f();
  } catch (const HttpError& e) {
    if (code) *code = e.code;
    return e.status;
  }
  return 200;
}

TEST(ServerParsing, Base64RoundTripsEveryLengthAndBothAlphabets) {
  std::mt19937 rng(3);
  for (size_t n = 0; n < 70; ++n) {
    std::string bytes(n, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    const std::string text = base64_encode(bytes);
    EXPECT_EQ(text.size(), (n + 2) / 3 * 4);
    std::string back;
    if (n == 0) {
      EXPECT_FALSE(base64_decode(text, &back));  // nothing is not an image
      continue;
    }
    ASSERT_TRUE(base64_decode(text, &back)) << n;
    EXPECT_EQ(back, bytes);
    // Without padding, URL-safe, wrapped in lines.
    std::string loose = text;
    while (!loose.empty() && loose.back() == '=') loose.pop_back();
    for (auto& c : loose) c = c == '+' ? '-' : c == '/' ? '_' : c;
    for (size_t i = 10; i < loose.size(); i += 11) loose.insert(i, "\n");
    ASSERT_TRUE(base64_decode(loose, &back)) << loose;
    EXPECT_EQ(back, bytes);
  }
  std::string out;
  EXPECT_FALSE(base64_decode("abc!", &out));
  EXPECT_FALSE(base64_decode("a", &out));        // a lone digit holds no byte
  EXPECT_FALSE(base64_decode("aGk=x", &out));    // data after padding
  ASSERT_TRUE(base64_decode("aG==", &out));
  EXPECT_EQ(out, "h");
  EXPECT_FALSE(base64_decode("aGk==", &out));    // padding past the group
  ASSERT_TRUE(base64_decode("aGk=", &out));
  EXPECT_EQ(out, "hi");
}

TEST(ServerParsing, DataUrisAndRemoteUrls) {
  ImageInput in = read_image_ref("data:image/png;base64,aGk=", "x");
  EXPECT_TRUE(in.error.empty());
  EXPECT_EQ(in.bytes, "hi");
  in = read_image_ref("  DATA:Image/JPEG;charset=x;BASE64,aGk=  ", "x");
  EXPECT_TRUE(in.error.empty()) << in.error;
  in = read_image_ref("aGk=", "x");  // bare base64
  EXPECT_EQ(in.bytes, "hi");
  in = read_image_ref("data:text/plain;base64,aGk=", "images[3]");
  EXPECT_EQ(in.error_status, 415);
  EXPECT_NE(in.error.find("images[3]"), std::string::npos);
  EXPECT_NE(in.error.find("text/plain"), std::string::npos);
  EXPECT_EQ(read_image_ref("data:,hello", "x").error_status, 415);  // text/plain by default
  EXPECT_EQ(read_image_ref("data:image/png,raw", "x").error_status, 400);  // not base64
  EXPECT_EQ(read_image_ref("data:image/png;base64", "x").error_status, 400);  // no comma
  EXPECT_EQ(read_image_ref("data:image/png;base64,@@@", "x").error_status, 400);
  EXPECT_EQ(read_image_ref("not base64!", "x").error_status, 400);
  std::string code;
  EXPECT_EQ(status_of([] { read_image_ref("https://example.com/a.jpg", "x"); }, &code), 400);
  EXPECT_EQ(code, "remote_url");
  EXPECT_EQ(status_of([] { read_image_ref("file:///etc/passwd", "x"); }), 400);
}

TEST(ServerParsing, ClassifyJson) {
  const RequestLimits limits;
  ClassifyRequest r = parse_classify_json(
      R"({"images": ["aGk=", {"url": "data:image/png;base64,aGk="}, {"image_url": {"url": "aGk="}}, "###"],
          "labels": ["joy", "fear"], "top_k": 2})",
      limits);
  ASSERT_EQ(r.images.size(), 4u);
  EXPECT_EQ(r.images[1].bytes, "hi");
  EXPECT_EQ(r.images[2].name, "images[2]");
  EXPECT_FALSE(r.images[3].error.empty());  // reported per image, not for the request
  EXPECT_EQ(*r.labels, (std::vector<std::string>{"joy", "fear"}));
  EXPECT_EQ(r.top_k, 2);
  r = parse_classify_json(R"({"image": "aGk=", "labels": "joy, fear ,calm"})", limits);
  EXPECT_EQ(r.images.size(), 1u);
  EXPECT_EQ(*r.labels, (std::vector<std::string>{"joy", "fear", "calm"}));
  EXPECT_EQ(r.top_k, 3);

  std::string code;
  for (const char* body : {"", "nope", "[1]", "\"x\"", "{\"images\": [", "{\"a\": 1} trailing"}) {
    EXPECT_EQ(status_of([&] { parse_classify_json(body, limits); }, &code), 400) << body;
    EXPECT_EQ(code, "invalid_json") << body;
  }
  EXPECT_EQ(status_of([&] { parse_classify_json(std::string(100, '[') + std::string(100, ']'), limits); }), 400);
  EXPECT_EQ(status_of([&] { parse_classify_json("{}", limits); }, &code), 400);
  EXPECT_EQ(code, "missing_field");
  for (const char* body : {R"({"images": []})", R"({"images": [1]})", R"({"images": {"a": 1}})",
                           R"({"images": ["aGk="], "labels": []})", R"({"images": ["aGk="], "labels": ["a", "a"]})",
                           R"({"images": ["aGk="], "labels": [""]})", R"({"images": ["aGk="], "labels": [1]})",
                           R"({"images": ["aGk="], "top_k": 0})", R"({"images": ["aGk="], "top_k": 1.5})",
                           R"({"images": ["aGk="], "top_k": 18446744073709551615})"}) {
    EXPECT_EQ(status_of([&] { parse_classify_json(body, limits); }), 400) << body;
  }
  RequestLimits two;
  two.max_images = 2;
  EXPECT_EQ(status_of([&] { parse_classify_json(R"({"images": ["aGk=", "aGk=", "aGk="]})", two); }, &code), 413);
  EXPECT_EQ(code, "too_many_images");
  RequestLimits few_labels;
  few_labels.max_labels = 2;
  EXPECT_EQ(status_of([&] { parse_classify_json(R"({"images": ["aGk="], "labels": ["a", "b", "c"]})", few_labels); }),
            400);
  json long_label = {{"images", {"aGk="}}, {"labels", {std::string(200, 'x')}}};
  EXPECT_EQ(status_of([&] { parse_classify_json(long_label.dump(), limits); }), 400);
}

TEST(ServerParsing, ClassifyFormKeepsPartOrder) {
  const RequestLimits limits;
  const std::vector<FormPart> parts = {
      {"z", "b.png", "image/png", "B"},   {"labels", "", "", "[\"joy\", \"fear\"]"},
      {"images", "", "", "A"},            {"top_k", "", "", " 2 "},
      {"comment", "", "", "ignored"},     {"file", "empty.png", "image/png", ""},
  };
  const ClassifyRequest r = parse_classify_form(parts, limits);
  ASSERT_EQ(r.images.size(), 3u);
  EXPECT_EQ(r.images[0].name, "b.png");
  EXPECT_EQ(r.images[0].bytes, "B");
  EXPECT_EQ(r.images[1].name, "images[1]");
  EXPECT_FALSE(r.images[2].error.empty());  // an empty file
  EXPECT_EQ(*r.labels, (std::vector<std::string>{"joy", "fear"}));
  EXPECT_EQ(r.top_k, 2);
  EXPECT_EQ(status_of([&] { parse_classify_form({{"labels", "", "", "joy"}}, limits); }), 400);
  EXPECT_EQ(status_of([&] { parse_classify_form({{"f", "a.png", "", "x"}, {"top_k", "", "", "-1"}}, limits); }), 400);
  EXPECT_EQ(status_of([&] { parse_classify_form({{"f", "a.png", "", "x"}, {"labels", "", "", "[\"a\""}}, limits); }),
            400);
  EXPECT_EQ(status_of([&] { parse_classify_form({{"f", "a.png", "", "x"}, {"labels", "", "", "[[\"a\"]]"}}, limits); }),
            400);
}

TEST(ServerParsing, EmbeddingsTellTextFromImages) {
  const RequestLimits limits;
  // Base64 of a PNG signature is an image; base64 of other bytes ("hi") and plain words are text.
  const std::string png_base64 = base64_encode(std::string("\x89PNG\r\n\x1A\n....", 12));
  EmbeddingsRequest r = parse_embeddings_json(
      R"({"input": ")" + png_base64 + R"(", "encoding_format": "base64"})", limits);
  EXPECT_EQ(r.images.size(), 1u);
  EXPECT_TRUE(r.texts.empty());
  EXPECT_TRUE(r.base64);
  r = parse_embeddings_json(R"({"input": ["aGk=", "data:image/png;base64,aGk=", "a happy dog", {"url": "aGk="}]})",
                            limits);
  ASSERT_EQ(r.order.size(), 4u);
  EXPECT_EQ(r.texts, (std::vector<std::string>{"aGk=", "a happy dog"}));
  EXPECT_EQ(r.images.size(), 2u);
  EXPECT_TRUE(r.order[0].is_text && r.order[0].index == 0);
  EXPECT_TRUE(!r.order[1].is_text && r.order[1].index == 0);
  EXPECT_TRUE(r.order[2].is_text && r.order[2].index == 1);
  EXPECT_TRUE(!r.order[3].is_text && r.order[3].index == 1);
  EXPECT_TRUE(is_embedding_text("a photo evoking joy"));
  EXPECT_FALSE(is_embedding_text(std::string(kBase64ImageMinChars, 'A')));  // too long for text: an image
  EXPECT_FALSE(is_embedding_text(base64_encode("\xFF\xD8\xFF\xE0 jpeg")));
  EXPECT_FALSE(is_embedding_text(base64_encode(std::string("RIFF\x10\0\0\0WEBPVP8 ", 16))));
  std::string code;
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({"input": "https://example.com/a.jpg"})", limits); }, &code), 400);
  EXPECT_EQ(code, "remote_url");
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({"input": [[1, 2, 3]]})", limits); }), 400);
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({"input": [5]})", limits); }, &code), 422);
  EXPECT_EQ(code, "token_arrays_unsupported");
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({"input": "')" + std::string(4097, 'a') + R"('"})", limits); }),
            400);
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({"input": []})", limits); }), 400);
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({"input": "aGk=", "encoding_format": "hex"})", limits); }), 400);
  EXPECT_EQ(status_of([&] { parse_embeddings_json(R"({})", limits); }), 400);
}

TEST(ServerParsing, ChatMessagesPartsAndSampling) {
  const RequestLimits limits;
  const ChatRequest r = parse_chat_json(R"({
      "model": "m", "stream": true, "stream_options": {"include_usage": true},
      "messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}}]},
        {"role": "assistant", "content": null},
        {"role": "user", "content": "and now?"}],
      "temperature": 0, "top_p": 0.5, "max_completion_tokens": 7, "stop": "END", "seed": -3, "n": 1})",
                                        limits);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].parts.size(), 2u);
  EXPECT_TRUE(r.messages[1].parts[1].is_image);
  EXPECT_EQ(r.messages[1].parts[1].image.bytes, "hi");
  EXPECT_EQ(r.image_count(), 1u);
  EXPECT_TRUE(r.messages[2].parts.empty());
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(*r.sampling.temperature, 0.0);
  EXPECT_EQ(r.sampling.top_p, 0.5);
  EXPECT_EQ(r.sampling.max_tokens, 7);
  EXPECT_EQ(r.sampling.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(*r.sampling.seed, static_cast<uint64_t>(-3));

  const std::string user = R"("messages": [{"role": "user", "content": "hi"}])";
  for (const std::string extra :
       {R"("temperature": -1)", R"("temperature": "hot")", R"("top_p": 0)", R"("top_p": 2)", R"("max_tokens": 0)",
        R"("max_tokens": 99999999)", R"("stop": ["a", "b", "c", "d", "e"])", R"("stop": [""])", R"("stop": 5)",
        R"("seed": 1.5)", R"("n": 2)", R"("stream": "yes")", R"("stream_options": 1)"}) {
    EXPECT_EQ(status_of([&] { parse_chat_json("{" + user + ", " + extra + "}", limits); }), 400) << extra;
  }
  for (const char* body :
       {R"({})", R"({"messages": []})", R"({"messages": [1]})", R"({"messages": [{"role": "user"}]})",
        R"({"messages": [{"role": "tool", "content": "x"}]})", R"({"messages": [{"role": "user", "content": 3}]})",
        R"({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]})",
        R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
        R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]}]})"}) {
    EXPECT_EQ(status_of([&] { parse_chat_json(body, limits); }), 400) << body;
  }
}

TEST(ServerParsing, ReasonRequest) {
  const RequestLimits limits;
  const ReasonRequest r =
      parse_reason_json(R"({"image": "aGk=", "labels": ["joy", "awe"], "stream": true, "max_tokens": 9})", limits);
  EXPECT_EQ(r.image.bytes, "hi");
  EXPECT_EQ(r.labels->size(), 2u);
  EXPECT_TRUE(r.stream);
  EXPECT_EQ(r.sampling.max_tokens, 9);
  EXPECT_EQ(status_of([&] { parse_reason_json(R"({"labels": ["joy"]})", limits); }), 400);
}

TEST(ServerParsing, ChatTemplates) {
  std::vector<ChatMessage> messages(3);
  messages[0].role = "system";
  messages[0].parts.push_back({false, "be kind", {}});
  messages[1].role = "user";
  messages[1].parts.push_back({false, "hi", {}});
  messages[2].role = "user";
  messages[2].parts.push_back({false, "there", {}});
  ChatTemplate t;
  ASSERT_TRUE(parse_chat_template("plain", &t));
  EXPECT_EQ(render_chat(messages, t).text, "be kind\n\nUser: hi\nUser: there\nAssistant:");
  ASSERT_TRUE(parse_chat_template("zephyr", &t));
  EXPECT_EQ(render_chat(messages, t).text,
            "<|system|>\nbe kind</s>\n<|user|>\nhi</s>\n<|user|>\nthere</s>\n<|assistant|>\n");
  ASSERT_TRUE(parse_chat_template("chatml", &t));
  const ChatPrompt p = render_chat(messages, t);
  EXPECT_EQ(p.text.rfind("<|im_start|>assistant\n"), p.text.size() - 22);
  EXPECT_EQ(p.stop, std::vector<std::string>{"<|im_end|>"});
  EXPECT_FALSE(parse_chat_template("jinja", &t));
}

TEST(ServerParsing, MultimodalTurns) {
  const RequestLimits limits;
  const ChatRequest r = parse_chat_json(R"({"messages": [
      {"role": "system", "content": "be brief"},
      {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "aGk="}},
                                   {"type": "text", "text": "What is shown?"}]},
      {"role": "assistant", "content": "a rocket"},
      {"role": "user", "content": "Why?"},
      {"role": "user", "content": [{"type": "text", "text": "And this?"}, {"type": "image_url", "image_url": "aGk="}]}]})",
                                        limits);
  const std::vector<MmTurnText> turns = mm_turns(r.messages);
  ASSERT_EQ(turns.size(), 2u);
  EXPECT_EQ(turns[0].question, "be brief\n\n<image>\nWhat is shown?");
  EXPECT_EQ(*turns[0].answer, "a rocket");
  EXPECT_EQ(turns[1].question, "Why?\nAnd this?\n<image>");
  EXPECT_FALSE(turns[1].answer);
  const auto fails = [&](const char* body) {
    return status_of([&] { mm_turns(parse_chat_json(body, limits).messages); });
  };
  EXPECT_EQ(fails(R"({"messages": [{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]})"), 400);
  EXPECT_EQ(fails(R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})"), 400);
  EXPECT_EQ(fails(R"({"messages": [{"role": "assistant", "content": [{"type": "image_url", "image_url": "aGk="}]}]})"),
            400);
}

}  // namespace
}  // namespace tinyemo::server
