// SPDX-License-Identifier: MIT
// The moelab CLI's shared pieces: argument parsing, backend selection, and the
// one-line error convention (message on stderr, non-zero exit).
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "moelab/dtype.hpp"
#include "moelab/kernels/scalar.hpp"
#include "moelab/model/decode_tuning.hpp"
#include "moelab/model/model.hpp"
#include "moelab/ops/linear.hpp"
#if MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
#endif
#if MOELAB_HAVE_XSIMD
#include "moelab/kernels/xsimd.hpp"
#endif

namespace moelab::cli {

// A mistake in the command line (exit code 2), as opposed to moelab::Error
// about a file or model (exit code 1).
struct UsageError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Args {
public:
    // argv after the subcommand. `flags` are options that take no value.
    Args(int argc, char** argv, std::set<std::string> flags) {
        for (int i = 0; i < argc; ++i) {
            std::string a = argv[i];
            if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
                const std::string key = a.substr(a.find_first_not_of('-'));
                if (flags.count(key)) {
                    options_[key] = "1";
                } else {
                    if (i + 1 >= argc) throw UsageError("option " + a + " needs a value");
                    options_[key] = argv[++i];
                }
            } else {
                positional_.push_back(a);
            }
        }
    }

    bool has(const std::string& key) const { return options_.count(key) != 0; }
    std::string get(const std::string& key, const std::string& fallback = "") const {
        const auto it = options_.find(key);
        return it == options_.end() ? fallback : it->second;
    }
    std::string required(const std::string& key) const {
        if (!has(key)) throw UsageError("missing --" + key);
        return get(key);
    }
    long long integer(const std::string& key, long long fallback) const {
        if (!has(key)) return fallback;
        return parse_integer(get(key), "--" + key);
    }
    double number(const std::string& key, double fallback) const {
        if (!has(key)) return fallback;
        try {
            std::size_t used = 0;
            const double v = std::stod(get(key), &used);
            if (used != get(key).size()) throw std::invalid_argument("");
            return v;
        } catch (const std::exception&) {
            throw UsageError("--" + key + ": '" + get(key) + "' is not a number");
        }
    }
    const std::vector<std::string>& positional() const { return positional_; }
    // Rejects options the command does not know (typos should not pass silently).
    void allow_only(const std::set<std::string>& known) const {
        for (const auto& [key, value] : options_)
            if (!known.count(key)) throw UsageError("unknown option --" + key);
    }

    static long long parse_integer(const std::string& text, const std::string& what) {
        long long v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec != std::errc() || end != text.data() + text.size())
            throw UsageError(what + ": '" + text + "' is not an integer");
        return v;
    }

private:
    std::vector<std::string> positional_;
    std::map<std::string, std::string> options_;
};

// "1,2,3" -> {1, 2, 3}
inline std::vector<std::int32_t> parse_token_list(const std::string& text) {
    std::vector<std::int32_t> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const long long v = Args::parse_integer(text.substr(start, comma - start), "--tokens");
        if (v < 0 || v > INT32_MAX) throw UsageError("--tokens: id " + std::to_string(v) + " is out of range");
        out.push_back(static_cast<std::int32_t>(v));
        start = comma + 1;
    }
    return out;
}

// "--dtype" values: every weight type moelab stores (f32, f16, bf16, q8_0,
// q4_0, q4_k, q5_k, q6_k), by its dtype_name.
inline DType parse_weight_dtype(const std::string& name) {
    std::string known;
    for (const DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0, DType::q4_0, DType::q4_k, DType::q5_k,
                          DType::q6_k}) {
        if (name == dtype_name(t)) return t;
        known += (known.empty() ? "" : ", ") + std::string(dtype_name(t));
    }
    throw UsageError("--dtype must be one of " + known + " (got '" + name + "')");
}

inline std::string default_backend() {
#if MOELAB_HAVE_HIGHWAY
    return "highway";
#elif MOELAB_HAVE_XSIMD
    return "xsimd";
#else
    return "scalar";
#endif
}

inline std::vector<std::string> available_backends() {
    std::vector<std::string> names{"scalar"};
#if MOELAB_HAVE_HIGHWAY
    names.push_back("highway");
#endif
#if MOELAB_HAVE_XSIMD
    names.push_back("xsimd");
#endif
    return names;
}

// Calls f(tag) with the backend tag named `name`.
template <class F>
decltype(auto) with_backend(const std::string& name, F&& f) {
    if (name == "scalar") return f(backend::scalar{});
#if MOELAB_HAVE_HIGHWAY
    if (name == "highway") return f(backend::highway{});
#endif
#if MOELAB_HAVE_XSIMD
    if (name == "xsimd") return f(backend::xsimd{});
#endif
    std::string known;
    for (const auto& n : available_backends()) known += (known.empty() ? "" : ", ") + n;
    throw UsageError("unknown backend '" + name + "' (this build has: " + known + ")");
}

// "--activations f32|int8|bf16": how activations meet the weights
// (ops::ActivationPrecision). f32, the default, is exact; int8 rounds them to
// 8 bits for integer products with quantized weights, bf16 rounds them to
// bf16 for bf16 x bf16 products with bf16 weights, where the backend has them.
inline ops::ActivationPrecision parse_activations(const Args& args) {
    const std::string v = args.get("activations", "f32");
    if (v == "f32") return ops::ActivationPrecision::f32;
    if (v == "int8") return ops::ActivationPrecision::int8;
    if (v == "bf16") return ops::ActivationPrecision::bf16;
    throw UsageError("--activations must be f32, int8 or bf16 (got '" + v + "')");
}

// "--int8-layout interleaved|file": in the int8 mode, whether Q4_K and Q8_0
// matrices get a copy with rows interleaved 16 at a time (the default; their
// bytes again in memory, faster products) or are read in the file's layout.
inline bool parse_int8_interleave(const Args& args) {
    const std::string v = args.get("int8-layout", "interleaved");
    if (v == "interleaved") return true;
    if (v == "file") return false;
    throw UsageError("--int8-layout must be interleaved or file (got '" + v + "')");
}

// "--matvec-reads auto|stream|passes": how the SIMD backends' matvec reads
// weight rows (kernels::MatvecReads). auto, the default, lets the
// Transformer time both ways in its first decode steps
// (model/decode_tuning.hpp); stream or passes fixes one. Same logits either way.
// parse_matvec_reads: nothing for auto.
inline std::optional<kernels::MatvecReads> parse_matvec_reads(const Args& args) {
    const std::string v = args.get("matvec-reads", "auto");
    if (v == "auto") return std::nullopt;
    if (v == "stream") return kernels::MatvecReads::stream_when_short;
    if (v == "passes") return kernels::MatvecReads::row_passes;
    throw UsageError("--matvec-reads must be auto, stream or passes (got '" + v + "')");
}
// `tag` with its setting replaced by `reads` (when given and the tag has one).
template <class Backend>
Backend with_matvec_reads(Backend tag, std::optional<kernels::MatvecReads> reads) {
    return reads ? kernels::with_matvec_reads(tag, *reads) : tag;
}
// Given a setting, the Transformer runs it instead of tuning.
template <class Transformer>
void apply_matvec_reads(std::optional<kernels::MatvecReads> reads, Transformer& transformer) {
    if (reads) transformer.fix_backend(with_matvec_reads(transformer.decode_tuning().chosen(), reads));
}

// Before a run under `precision` on Backend: in the int8 mode, the weight
// types Backend has interleaved products for get interleaved copies
// (Model::interleave_for_int8) unless `interleave` is false. Returns the bytes added.
template <class Backend>
std::size_t prepare_model(Backend, Model& model, ops::ActivationPrecision precision, bool interleave, ThreadPool& pool) {
    if (precision != ops::ActivationPrecision::int8 || !interleave) return 0;
    std::size_t added = 0;
    for (const DType t : {DType::q4_k, DType::q8_0})
        if (ops::reads_interleaved<Backend>(t)) added += model.interleave_for_int8({t}, &pool);
    return added;
}

// For banners: what the products run on under `precision`.
template <class Backend>
std::string activations_description(Backend backend, ops::ActivationPrecision precision, bool interleave = false) {
    if (precision == ops::ActivationPrecision::f32) return "f32 activations (exact)";
    const bool int8 = precision == ops::ActivationPrecision::int8;
    const char* isa = nullptr;
    if constexpr (std::is_same_v<Backend, backend::scalar>) {
        isa = "scalar reference";
    } else if (int8) {
        if constexpr (requires { kernels::int8_instruction_set(backend); }) isa = kernels::int8_instruction_set(backend);
    } else {
        if constexpr (requires { kernels::bf16_instruction_set(backend); }) isa = kernels::bf16_instruction_set(backend);
    }
    const std::string applies_to = int8 ? "quantized weights" : "bf16 weights";
    std::string layout;
    if (int8 && interleave) {
        const bool q4_k = ops::reads_interleaved<Backend>(DType::q4_k), q8_0 = ops::reads_interleaved<Backend>(DType::q8_0);
        if (q4_k || q8_0)
            layout = std::string("; ") + (q4_k && q8_0 ? "Q4_K and Q8_0" : q4_k ? "Q4_K" : "Q8_0") +
                     " rows interleaved 16 at a time (Q4_K: 148 bytes per 256 weights)";
    }
    if (isa) return std::string(int8 ? "int8" : "bf16") + " activations for " + applies_to + ", " + isa + layout;
    return std::string("f32 activations (") + Backend::name + " has no " + (int8 ? "int8" : "bf16") +
           " products in this build)";
}

// Subcommands: each returns the process exit code.
int cmd_inspect(int argc, char** argv);
int cmd_logits(int argc, char** argv);
int cmd_tokenize(int argc, char** argv);
int cmd_run(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_bench_model(int argc, char** argv);  // moelab bench --model FILE
int cmd_synth(int argc, char** argv);

}  // namespace moelab::cli
