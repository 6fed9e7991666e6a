// SPDX-License-Identifier: MIT
// The smallest complete program: load a checkpoint, tokenize a prompt, generate.
//
//   minimal_generate MODEL "The capital of France is" [n_tokens]
//
// MODEL is a .gguf file or a Hugging Face folder. Copy this file and
// include/moelab/ into your project; link Threads (and Highway or xsimd if
// you want their backends). Greedy decoding; see generate.hpp for sampling.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "moelab/generate.hpp"
#include "moelab/tokenizer/model_tokenizer.hpp"
#if MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
using Backend = moelab::backend::highway;
#else
using Backend = moelab::backend::scalar;
#endif

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL PROMPT [n_tokens]\n", argv[0]);
        return 2;
    }
    try {
        const moelab::Model model = moelab::Model::load(argv[1]);   // memory-mapped, nothing copied
        const moelab::Tokenizer tokenizer = moelab::load_tokenizer(model);
        const auto prompt = tokenizer.encode(argv[2]);

        moelab::GenerationOptions options;                           // temperature 0: greedy
        options.max_new_tokens = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 32;

        moelab::ThreadPool pool;                                     // one thread per core
        moelab::Transformer<Backend> transformer(model, pool, prompt.size() + options.max_new_tokens);
        std::fputs(argv[2], stdout);
        const auto result = moelab::generate(transformer, tokenizer, prompt, options, [](std::string_view text) {
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fflush(stdout);
            return true;                                             // false would stop early
        });
        std::printf("\n[%zu tokens, %.1f tokens/s]\n", result.tokens.size(),
                    static_cast<double>(result.decode_steps) / (result.decode_seconds + 1e-9));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
