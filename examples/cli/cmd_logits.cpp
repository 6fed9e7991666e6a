// SPDX-License-Identifier: MIT
// moelab logits — the contract other tools rely on:
//   moelab logits --model PATH --tokens 1,2,3 --out FILE [--gen N --gen-out FILE2]
//                 [--routing FILE.json] [--backend scalar|highway|xsimd] [--activations f32|int8|bf16] [--int8-layout interleaved|file] [-t N]
// FILE gets float32 little-endian logits [n_tokens][n_vocab], every position
// (the layout of the fixtures' refs). With --gen N, N tokens are decoded
// greedily one at a time through the cache: each step's logits go to FILE2,
// [N][n_vocab], and the chosen ids are printed on stdout as a JSON array.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/cli.hpp"
#include "cli/transformers.hpp"

namespace moelab::cli {

namespace {

class BinaryWriter {
public:
    explicit BinaryWriter(const std::string& path) : path_(path), out_(path, std::ios::binary) {
        if (!out_) throw Error(path, "cannot open for writing");
    }
    void write(const float* values, std::size_t n) {
        static_assert(sizeof(float) == 4);
        out_.write(reinterpret_cast<const char*>(values), static_cast<std::streamsize>(n * sizeof(float)));
        if (!out_) throw Error(path_, "write failed");
    }

private:
    std::string path_;
    std::ofstream out_;
};

std::size_t argmax(const std::vector<float>& x) {
    std::size_t best = 0;
    for (std::size_t i = 1; i < x.size(); ++i)
        if (x[i] > x[best]) best = i;  // ties: the lowest id
    return best;
}

}  // namespace

int cmd_logits(int argc, char** argv) {
    const Args args(argc, argv, {});
    args.allow_only({"model", "tokens", "out", "gen", "gen-out", "routing", "backend", "activations", "int8-layout", "t", "threads"});
    if (!args.positional().empty()) throw UsageError("unexpected argument '" + args.positional()[0] + "'");
    const std::string model_path = args.required("model");
    const std::vector<std::int32_t> tokens = parse_token_list(args.required("tokens"));
    const std::string out_path = args.required("out");
    const long long n_gen = args.integer("gen", 0);
    if (n_gen < 0 || n_gen > 1'000'000) throw UsageError("--gen must be in [0, 1000000]");
    if (n_gen > 0 && !args.has("gen-out")) throw UsageError("--gen needs --gen-out FILE2");
    const long long threads = args.integer("t", args.integer("threads", 0));
    if (threads < 0 || threads > 1024) throw UsageError("-t must be in [0, 1024]");
    const ops::ActivationPrecision activations = parse_activations(args);
    const bool interleave = parse_int8_interleave(args);

    Model model = Model::load(model_path);
    const std::size_t V = model.config().n_vocab;
    ThreadPool pool(static_cast<std::size_t>(threads));
    RoutingTrace trace;

    with_backend(args.get("backend", default_backend()), [&](auto backend) {
        using Backend = decltype(backend);
        prepare_model(backend, model, activations, interleave, pool);
        Transformer<Backend> transformer(model, pool, tokens.size() + static_cast<std::size_t>(n_gen));
        if (args.has("routing")) transformer.record_routing(&trace);
        transformer.set_activation_precision(activations);

        std::vector<float> logits(tokens.size() * V);
        transformer.forward(tokens, logits.data());
        BinaryWriter(out_path).write(logits.data(), logits.size());

        if (n_gen > 0) {
            BinaryWriter gen_out(args.get("gen-out"));
            std::vector<float> last(logits.end() - static_cast<std::ptrdiff_t>(V), logits.end());
            nlohmann::json chosen = nlohmann::json::array();
            for (long long step = 0; step < n_gen; ++step) {
                const auto next = static_cast<std::int32_t>(argmax(last));
                chosen.push_back(next);
                transformer.forward(std::span(&next, 1), last.data());
                gen_out.write(last.data(), V);
            }
            std::puts(chosen.dump().c_str());
        }
    });

    if (args.has("routing")) {
        const std::size_t k = trace.n_expert_used;
        nlohmann::json entries = nlohmann::json::array();
        for (std::size_t i = 0; i < trace.layer.size(); ++i) {
            entries.push_back({{"layer", trace.layer[i]},
                               {"position", trace.position[i]},
                               {"experts", std::vector<std::uint32_t>(trace.experts.begin() + i * k, trace.experts.begin() + (i + 1) * k)},
                               {"weights", std::vector<float>(trace.weights.begin() + i * k, trace.weights.begin() + (i + 1) * k)}});
        }
        const ModelConfig& c = model.config();
        const nlohmann::json out = {{"model", model_path},
                                    {"n_layer", c.n_layer},
                                    {"n_expert", c.moe.n_expert},
                                    {"n_expert_used", c.moe.n_expert_used},
                                    {"routing", entries}};
        std::ofstream f(args.get("routing"));
        if (!f) throw Error(args.get("routing"), "cannot open for writing");
        f << out.dump() << "\n";
    }
    return 0;
}

}  // namespace moelab::cli
