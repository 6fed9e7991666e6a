// SPDX-License-Identifier: MIT
// moelab/tokenizer/tokenizer_json.hpp — read a Hugging Face tokenizer.json into a Tokenizer.
//
// Depends on: moelab/error.hpp, moelab/tokenizer/tokenizer.hpp, nlohmann/json, the standard library.
//
// What is read, and what is accepted (anything else is a moelab::Error naming the file and the
// key, because a tokenizer that half-understands its file gives wrong ids without a sound):
//   model           type "BPE"; vocab {token: id}; merges ["a b", ...] or [["a", "b"], ...];
//                   ignore_merges (default false); no byte_fallback, dropout, subword affixes
//   added_tokens    [{id, content, special, normalized, lstrip/rstrip/single_word = false}]
//   normalizer      null, {"type": "NFC"}, or a Sequence of those
//   pre_tokenizer   Sequence[Split{Regex: the Qwen2 or Llama 3 pattern, behavior Isolated},
//                   ByteLevel{add_prefix_space false, use_regex false}]
//   decoder         null or ByteLevel
// and, when tokenizer_config.json lies beside it, bos_token / eos_token (a string or
// {"content": ...}) for bos_id / eos_id. end_of_turn_ids = EOS plus the usual end markers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/error.hpp"
#include "moelab/io/untrusted_json.hpp"
#include "moelab/tokenizer/tokenizer.hpp"

namespace moelab {

namespace detail {

inline Normalizer parse_normalizer(const nlohmann::json& normalizer) {
    if (normalizer.is_null()) return Normalizer::none;
    const std::string type = normalizer.at("type").get<std::string>();
    if (type == "NFC") return Normalizer::nfc;
    if (type == "Sequence") {
        Normalizer result = Normalizer::none;
        for (const auto& step : normalizer.at("normalizers"))
            if (parse_normalizer(step) == Normalizer::nfc) result = Normalizer::nfc;
        return result;
    }
    throw Error("normalizer: type '" + type + "' is not supported (moelab implements NFC or none)");
}

inline PreTokenizer parse_pre_tokenizer(const nlohmann::json& pre) {
    const auto unsupported = [&](const std::string& why) {
        return Error("pre_tokenizer: " + why + " (moelab implements Sequence[Split(Regex, Isolated), "
                     "ByteLevel(use_regex=false)] with the Qwen2 or Llama 3 pattern): " + pre.dump().substr(0, 300));
    };
    if (pre.is_null() || pre.value("type", "") != "Sequence") throw unsupported("not a Sequence");
    const auto& steps = pre.at("pretokenizers");
    if (steps.size() != 2) throw unsupported("expected 2 steps");
    const auto& split = steps[0];
    const auto& byte_level = steps[1];
    if (split.value("type", "") != "Split" || !split.contains("pattern") || !split["pattern"].contains("Regex"))
        throw unsupported("first step is not a Split on a Regex");
    if (split.value("behavior", "") != "Isolated" || split.value("invert", false))
        throw unsupported("Split behavior is not Isolated");
    if (byte_level.value("type", "") != "ByteLevel" || byte_level.value("add_prefix_space", false) ||
        byte_level.value("use_regex", true))
        throw unsupported("second step is not ByteLevel(add_prefix_space=false, use_regex=false)");
    return pre_tokenizer_from_regex(split["pattern"]["Regex"].get<std::string>());
}

inline std::pair<std::string, std::string> parse_merge(const nlohmann::json& merge, std::size_t rank) {
    if (merge.is_array() && merge.size() == 2) return {merge[0].get<std::string>(), merge[1].get<std::string>()};
    if (merge.is_string()) {
        const std::string text = merge.get<std::string>();
        const auto space = text.find(' ');
        if (space != std::string::npos && text.find(' ', space + 1) == std::string::npos)
            return {text.substr(0, space), text.substr(space + 1)};
    }
    throw Error("model.merges[" + std::to_string(rank) + "]: expected \"a b\" or [\"a\", \"b\"], got " + merge.dump());
}

// bos_token / eos_token of tokenizer_config.json: null, "text", or {"content": "text", ...}.
inline std::optional<std::int32_t> config_token_id(const nlohmann::json& config, const char* key,
                                                   const std::vector<std::string>& tokens) {
    if (!config.contains(key) || config[key].is_null()) return std::nullopt;
    const std::string content =
        config[key].is_object() ? config[key].at("content").get<std::string>() : config[key].get<std::string>();
    for (std::size_t id = 0; id < tokens.size(); ++id)
        if (tokens[id] == content) return static_cast<std::int32_t>(id);
    throw Error(std::string(key) + " '" + content + "' is not a token");
}

inline TokenizerSpec parse_tokenizer_json(const nlohmann::json& json) {
    TokenizerSpec spec;
    const auto& model = json.at("model");
    if (model.value("type", "") != "BPE") throw Error("model.type is not BPE");
    if (model.value("byte_fallback", false)) throw Error("model.byte_fallback = true is not supported");
    if (model.contains("dropout") && !model["dropout"].is_null()) throw Error("model.dropout is not supported");
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
        if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
            throw Error(std::string("model.") + key + " is not supported");
    spec.ignore_merges = model.value("ignore_merges", false);

    // id -> token: the vocabulary plus the added tokens, with no gaps and no id used twice.
    std::vector<std::optional<std::string>> by_id;
    auto place = [&](std::int64_t id, const std::string& token, const char* where) {
        if (id < 0 || id > (std::int64_t{1} << 24)) throw Error(std::string(where) + ": token '" + token + "' has id " + std::to_string(id));
        if (static_cast<std::size_t>(id) >= by_id.size()) by_id.resize(id + 1);
        if (by_id[id] && *by_id[id] != token)
            throw Error(std::string(where) + ": id " + std::to_string(id) + " is both '" + *by_id[id] + "' and '" + token + "'");
        by_id[id] = token;
    };
    for (const auto& [token, id] : model.at("vocab").items()) place(id.get<std::int64_t>(), token, "model.vocab");
    for (const auto& added : json.value("added_tokens", nlohmann::json::array())) {
        AddedToken token{added.at("content").get<std::string>(), added.at("id").get<std::int32_t>(),
                         added.value("special", false), added.value("normalized", false)};
        for (const char* key : {"lstrip", "rstrip", "single_word"})
            if (added.value(key, false))
                throw Error("added_tokens: '" + token.content + "' has " + key + " = true, which is not supported");
        place(token.id, token.content, "added_tokens");
        spec.added_tokens.push_back(std::move(token));
    }
    spec.tokens.reserve(by_id.size());
    for (std::size_t id = 0; id < by_id.size(); ++id) {
        if (!by_id[id]) throw Error("no token has id " + std::to_string(id) + " (ids must be 0..n_vocab-1)");
        spec.tokens.push_back(std::move(*by_id[id]));
    }

    const auto& merges = model.at("merges");
    spec.merges.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) spec.merges.push_back(parse_merge(merges[rank], rank));

    spec.normalizer = parse_normalizer(json.value("normalizer", nlohmann::json()));
    spec.pre_tokenizer = parse_pre_tokenizer(json.value("pre_tokenizer", nlohmann::json()));
    const auto decoder = json.value("decoder", nlohmann::json());
    if (!decoder.is_null() && decoder.value("type", "") != "ByteLevel")
        throw Error("decoder: type '" + decoder.value("type", "") + "' is not supported (expected ByteLevel)");
    return spec;
}

}  // namespace detail

// The spec of a tokenizer.json (plus bos/eos from a tokenizer_config.json beside it).
// Throws moelab::Error naming the file and what is wrong with it.
inline TokenizerSpec tokenizer_spec_from_hf_json(const std::filesystem::path& tokenizer_json) {
    TokenizerSpec spec;
    const nlohmann::json json = io::read_json_file(tokenizer_json);
    try {
        spec = detail::parse_tokenizer_json(json);
    } catch (const nlohmann::json::exception& e) {
        throw Error(tokenizer_json.string(), std::string("unexpected structure: ") + e.what());
    } catch (const Error& e) {
        throw Error(tokenizer_json.string(), e.what());
    }
    const auto config_path = tokenizer_json.parent_path() / "tokenizer_config.json";
    if (std::filesystem::exists(config_path)) {
        const nlohmann::json config = io::read_json_file(config_path);
        try {
            spec.bos_id = detail::config_token_id(config, "bos_token", spec.tokens);
            spec.eos_id = detail::config_token_id(config, "eos_token", spec.tokens);
        } catch (const nlohmann::json::exception& e) {
            throw Error(config_path.string(), std::string("unexpected structure: ") + e.what());
        } catch (const Error& e) {
            throw Error(config_path.string(), e.what());
        }
    }
    spec.end_of_turn_ids = detail::default_end_of_turn_ids(spec.added_tokens, spec.eos_id);
    return spec;
}

// A Tokenizer from a tokenizer.json; errors name the file.
inline Tokenizer load_hf_tokenizer(const std::filesystem::path& tokenizer_json) {
    TokenizerSpec spec = tokenizer_spec_from_hf_json(tokenizer_json);
    try {
        return Tokenizer(std::move(spec));
    } catch (const Error& e) {
        throw Error(tokenizer_json.string(), e.what());
    }
}

}  // namespace moelab
