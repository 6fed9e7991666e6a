// SPDX-License-Identifier: MIT
// moelab/tokenizer/model_tokenizer.hpp — the tokenizer and chat template that
// come with a checkpoint: inside a GGUF file (tokenizer.ggml.*), or beside the
// weights of a Hugging Face folder (tokenizer.json, tokenizer_config.json).
//
// Depends on: moelab/model/model.hpp, moelab/io/gguf.hpp, moelab/io/untrusted_json.hpp,
//             moelab/tokenizer/tokenizer.hpp, moelab/tokenizer/tokenizer_json.hpp.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "moelab/error.hpp"
#include "moelab/io/gguf.hpp"
#include "moelab/io/untrusted_json.hpp"
#include "moelab/model/model.hpp"
#include "moelab/tokenizer/tokenizer.hpp"
#include "moelab/tokenizer/tokenizer_json.hpp"

namespace moelab {

// GGUF keeps a byte-level BPE vocabulary as parallel arrays:
//   tokenizer.ggml.model       "gpt2" (byte-level BPE; the only kind moelab reads)
//   tokenizer.ggml.pre         pre-tokenizer name ("qwen2", "llama-bpe", ...)
//   tokenizer.ggml.tokens      [n_vocab] token strings, in byte-level form
//   tokenizer.ggml.merges      ["a b", ...] in rank order
//   tokenizer.ggml.token_type  [n_vocab]: 3 = control (special), 4 = user-defined (added, not special)
//   tokenizer.ggml.{bos,eos,eot}_token_id
// GGUF has no normalizer field; tokenizer_spec_from_gguf applies NFC for the
// Qwen pre-tokenizer, as the original tokenizer.json does.
namespace detail {

// Adds the file name to an Error that does not start with it already.
template <class F>
auto naming_gguf_file(const io::GGUFFile& gguf, F&& f) {
    const std::string file = gguf.path().string();
    try {
        return f();
    } catch (const Error& e) {
        const std::string what = e.what();
        if (what.rfind(file, 0) == 0) throw;  // already names the file
        throw Error(file, what);
    }
}

}  // namespace detail

// The TokenizerSpec a GGUF file describes, for callers that adjust it before building the
// Tokenizer (a test turning the normalizer off to compare with llama.cpp, which applies none).
// Throws moelab::Error naming the file and the key.
inline TokenizerSpec gguf_tokenizer_spec(const io::GGUFFile& gguf) {
    return detail::naming_gguf_file(gguf, [&] {
        const std::string model = gguf.get_string("tokenizer.ggml.model");
        if (model != "gpt2")
            throw Error("tokenizer.ggml.model '" + model + "' is not supported (moelab reads byte-level BPE, 'gpt2')");
        std::vector<std::int32_t> types;
        if (gguf.find("tokenizer.ggml.token_type"))
            for (std::int64_t t : gguf.get_int_array("tokenizer.ggml.token_type")) types.push_back(static_cast<std::int32_t>(t));
        auto token_id = [&](const char* key) -> std::optional<std::int32_t> {
            if (!gguf.find(key)) return std::nullopt;
            const std::int64_t id = gguf.get_int(key);
            if (id < 0 || id > INT32_MAX) throw Error(std::string(key) + ": id " + std::to_string(id) + " out of range");
            return static_cast<std::int32_t>(id);
        };
        const std::vector<std::string> merges = gguf.get_string_array("tokenizer.ggml.merges");
        TokenizerSpec spec = tokenizer_spec_from_gguf(
            gguf.get_string_array("tokenizer.ggml.tokens"), merges, types,
            gguf.find("tokenizer.ggml.pre") ? gguf.get_string("tokenizer.ggml.pre") : "default",
            token_id("tokenizer.ggml.bos_token_id"), token_id("tokenizer.ggml.eos_token_id"));
        if (const auto eot = token_id("tokenizer.ggml.eot_token_id")) spec.end_of_turn_ids.push_back(*eot);
        return spec;
    });
}

inline Tokenizer load_gguf_tokenizer(const io::GGUFFile& gguf) {
    return detail::naming_gguf_file(gguf, [&] { return Tokenizer(gguf_tokenizer_spec(gguf)); });
}

// The tokenizer of a loaded model.
inline Tokenizer load_tokenizer(const Model& model) {
    if (model.gguf()) return load_gguf_tokenizer(*model.gguf());
    const auto path = model.path() / "tokenizer.json";
    if (!std::filesystem::exists(path)) throw Error(model.path().string(), "no tokenizer.json in the model folder");
    return load_hf_tokenizer(path);
}

// The tokenizer of the checkpoint at `path` (a .gguf file or an HF folder),
// without binding its weights.
inline Tokenizer load_tokenizer(const std::filesystem::path& path) {
    if (!std::filesystem::is_directory(path)) return load_gguf_tokenizer(io::GGUFFile(path));
    const auto json = path / "tokenizer.json";
    if (!std::filesystem::exists(json)) throw Error(path.string(), "no tokenizer.json in the model folder");
    return load_hf_tokenizer(json);
}

// The model's chat template (Jinja source), or "" if it has none.
inline std::string chat_template_source(const Model& model) {
    if (model.gguf()) return model.gguf()->find("tokenizer.chat_template") ? model.gguf()->get_string("tokenizer.chat_template") : "";
    const auto path = model.path() / "tokenizer_config.json";
    if (!std::filesystem::exists(path)) return "";
    const nlohmann::json config = io::read_json_file(path);
    if (!config.contains("chat_template")) return "";
    const nlohmann::json& t = config["chat_template"];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array())  // [{"name": "default", "template": "..."}, ...]
        for (const auto& entry : t)
            if (entry.is_object() && entry.value("name", "") == "default" && entry.contains("template") &&
                entry["template"].is_string())
                return entry["template"].get<std::string>();
    throw Error(path.string(), "chat_template is neither a string nor a list with a 'default' entry");
}

}  // namespace moelab
