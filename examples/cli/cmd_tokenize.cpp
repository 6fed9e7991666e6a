// SPDX-License-Identifier: MIT
// moelab tokenize --model PATH (--text S | --file F | --jsonl F)
// Prints the token ids of S (or of file F's contents) as a JSON array. With
// --jsonl, reads lines {"text": ...} and writes lines {"text": ..., "ids": [...]}.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "moelab/tokenizer/model_tokenizer.hpp"

namespace moelab::cli {

int cmd_tokenize(int argc, char** argv) {
    const Args args(argc, argv, {});
    args.allow_only({"model", "text", "file", "jsonl"});
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const int sources = args.has("text") + args.has("file") + args.has("jsonl");
    if (sources != 1) throw UsageError("give exactly one of --text S, --file F, --jsonl F");
    const Tokenizer tokenizer = load_tokenizer(args.required("model"));

    if (args.has("jsonl")) {
        const std::string path = args.get("jsonl");
        std::ifstream in(path);
        if (!in) throw Error(path, "cannot open");
        std::string line;
        std::size_t line_no = 0;
        while (std::getline(in, line)) {
            ++line_no;
            if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
            const std::string where = path + ":" + std::to_string(line_no);
            nlohmann::json record;
            try {
                record = nlohmann::json::parse(line);
            } catch (const nlohmann::json::exception& e) {
                throw Error(where, std::string("invalid JSON: ") + e.what());
            }
            if (!record.is_object() || !record.contains("text") || !record["text"].is_string())
                throw Error(where, "expected an object with a string field \"text\"");
            try {
                record["ids"] = tokenizer.encode(record["text"].get<std::string>());
            } catch (const Error& e) {
                throw Error(where, e.what());
            }
            std::puts(record.dump().c_str());
        }
        return 0;
    }

    std::string text = args.get("text");
    if (args.has("file")) {
        std::ifstream in(args.get("file"), std::ios::binary);
        if (!in) throw Error(args.get("file"), "cannot open");
        text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::vector<std::int32_t> ids;
    try {
        ids = tokenizer.encode(text);
    } catch (const Error& e) {
        throw Error(args.has("file") ? args.get("file") : "--text", e.what());
    }
    std::puts(nlohmann::json(ids).dump().c_str());
    return 0;
}

}  // namespace moelab::cli
