// SPDX-License-Identifier: MIT
// moelab — the command-line front end. Every error ends here: one line on
// stderr ("moelab: <what went wrong>") and a non-zero exit code.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "moelab/config.hpp"
#include "moelab/error.hpp"
#include "cli/cli.hpp"

namespace {

const char* kUsage =
    "moelab " MOELAB_VERSION_STRING " — dense FFN vs Mixture-of-Experts, measured\n"
    "\n"
    "usage: moelab <command> [options]\n"
    "\n"
    "commands:\n"
    "  bench [--d-model D] [--d-ff F] [--experts E] [--k K] [--batch 1,8,64,512] [--dtype bf16] [--json FILE]\n"
    "                                    dense vs MoE FFN on synthetic weights, against measured ceilings\n"
    "  bench --model FILE [--prefill 64,512] [--decode 32] [--depth 4] [--reps 3] [-t N] [--json FILE]\n"
    "                                    a whole model: decode/prefill tokens/s, GB/s and FLOP/s vs ceilings\n"
    "  inspect MODEL [--json]            architecture, hyperparameters, tensors, dense-vs-MoE cost\n"
    "  logits --model M --tokens 1,2,3 --out FILE [--gen N --gen-out FILE2] [--routing FILE.json]\n"
    "                                    float32 logits of every position (and greedy decode steps)\n"
    "  tokenize --model M (--text S | --file F | --jsonl F)\n"
    "                                    token ids as JSON\n"
    "  run --model M --prompt TEXT [-n N] [--temp T] [--top-k K] [--top-p P] [--min-p P]\n"
    "      [--repeat-penalty R] [--seed S] [--chat] [--system TEXT] [--stop STR] [--ctx N]\n"
    "                                    generate text, streamed; speeds and expert usage on stderr\n"
    "  synth --out FILE [--arch qwen3|qwen3moe] [--d-model D] [--layers L] [--dtype bf16] ...\n"
    "                                    write a synthetic GGUF model (for side-by-side speed runs)\n"
    "  --version                         version, and the instruction set each backend compiled to\n"
    "\n"
    "common options: --backend scalar|highway|xsimd, -t N (threads)\n"
    "speed options (bench --model, run): --activations f32|int8|bf16, --matvec-reads auto|stream|passes\n"
    "MODEL is a .gguf file or a Hugging Face folder (config.json + *.safetensors).\n";

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
        std::fputs(kUsage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const std::string command = argv[1];
    try {
        using namespace moelab::cli;
        if (command == "inspect") return cmd_inspect(argc - 2, argv + 2);
        if (command == "logits") return cmd_logits(argc - 2, argv + 2);
        if (command == "tokenize") return cmd_tokenize(argc - 2, argv + 2);
        if (command == "run") return cmd_run(argc - 2, argv + 2);
        if (command == "bench") return cmd_bench(argc - 2, argv + 2);
        if (command == "synth") return cmd_synth(argc - 2, argv + 2);
        if (command == "--version" || command == "version") {
            std::puts("moelab " MOELAB_VERSION_STRING);
            for (const std::string& name : available_backends())
                with_backend(name, [&](auto b) { std::printf("  backend %-8s %s\n", name.c_str(), instruction_set(b)); });
            return 0;
        }
        throw UsageError("unknown command '" + command + "' (see moelab --help)");
    } catch (const moelab::cli::UsageError& e) {
        std::fprintf(stderr, "moelab %s: %s\n", command.c_str(), e.what());
        return 2;
    } catch (const moelab::Error& e) {
        std::fprintf(stderr, "moelab %s: %s\n", command.c_str(), e.what());
        return 1;
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "moelab %s: out of memory\n", command.c_str());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "moelab %s: %s\n", command.c_str(), e.what());
        return 1;
    }
}
