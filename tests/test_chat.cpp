// SPDX-License-Identifier: MIT
#include <catch2/catch.hpp>

#include <fstream>

#include "moelab/chat.hpp"
#include "support/fixtures.hpp"

using namespace moelab;

TEST_CASE("ChatML is recognised in the real Qwen3 template and formatted", "[chat][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const auto config = nlohmann::json::parse(
        std::ifstream(test::fixtures_dir() / "models/qwen3-dense-fullvocab.hf/tokenizer_config.json"));
    const ChatTemplate t = ChatTemplate::detect(config["chat_template"].get<std::string>(), "tokenizer_config.json");
    REQUIRE(t.format == ChatFormat::chatml);
    // The ChatML turn structure, as the Qwen template renders it.
    REQUIRE(t.apply({{"system", "Be brief."}, {"user", "Hi"}}) ==
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST_CASE("Llama 3 templates, with and without the 3.1 date preamble", "[chat]") {
    const ChatTemplate l3 = ChatTemplate::detect("{{ '<|start_header_id|>' + role }}", "test");
    REQUIRE(l3.format == ChatFormat::llama3);
    REQUIRE(l3.apply({{"user", " Hi \n"}}) ==
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
    const ChatTemplate l31 = ChatTemplate::detect("<|start_header_id|> Cutting Knowledge Date: {{ x }}", "test");
    REQUIRE(l31.llama31_date_preamble);
    REQUIRE(l31.apply({{"user", "Hi"}}) ==
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST_CASE("unknown or missing templates are refused with a clear error", "[chat]") {
    REQUIRE_THROWS_WITH(ChatTemplate::detect("{% for m in messages %}[INST]{{m}}{% endfor %}", "x.json"),
                        Catch::Contains("x.json") && Catch::Contains("not supported"));
    REQUIRE_THROWS_WITH(ChatTemplate::detect("", "model.gguf"), Catch::Contains("no chat template"));
}
