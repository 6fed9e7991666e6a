// SPDX-License-Identifier: MIT
// moelab/model/model.hpp — open a checkpoint (a .gguf file or a Hugging Face
// folder) into one architecture-neutral description: ModelConfig + ModelWeights.
//
// Depends on: moelab/io/gguf.hpp, moelab/io/safetensors.hpp, moelab/model/config_gguf.hpp,
//             moelab/model/config_hf.hpp, moelab/model/weight_map.hpp, moelab/model/weights.hpp,
//             moelab/ops/linear.hpp (which dtypes have kernels),
//             moelab/quant/interleaved.hpp, moelab/thread_pool.hpp (interleave_for_int8),
//             nlohmann/json.
//
// Loading is cheap: files are memory-mapped and matrices stay where they lie,
// at their stored dtype. What loading does do is check everything a forward
// pass will rely on — every tensor present, of the expected shape, of a type
// with kernels — so that a bad file fails here with a message naming the file
// and the tensor, not later with a crash.
#pragma once

#include <algorithm>
#include <cmath>
#include <deque>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "moelab/error.hpp"
#include "moelab/io/gguf.hpp"
#include "moelab/io/safetensors.hpp"
#include "moelab/io/untrusted_json.hpp"
#include "moelab/model/config.hpp"
#include "moelab/model/config_gguf.hpp"
#include "moelab/model/config_hf.hpp"
#include "moelab/model/weight_map.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/ops/linear.hpp"
#include "moelab/quant/interleaved.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab {

class Model {
public:
    // `path` is a .gguf file (the first or any part of a split set) or a folder
    // holding config.json and model.safetensors (or its sharded index).
    static Model load(const std::filesystem::path& path);

    const ModelConfig& config() const { return config_; }
    const ModelWeights& weights() const { return weights_; }
    const WeightMap& weight_map() const { return *map_; }
    const std::filesystem::path& path() const { return path_; }
    // The GGUF file, when the model came from one (tokenizer and chat template live there).
    const io::GGUFFile* gguf() const { return gguf_.get(); }

    // Opt-in, for the int8-activation mode: gives every Q4_K and Q8_0 matrix
    // of `dtypes` a copy of its rows interleaved 16 at a time
    // (quant/interleaved.hpp), which backends with interleaved products read
    // instead of the file's layout (ops/linear.hpp). Costs those matrices'
    // bytes again in memory (Q4_K 1.03x), once, and reads every one of them;
    // the copied rows' pages of the mapped file are then handed back to the
    // kernel. The results differ from the file layout's int8 products only in
    // the rounding of the f32 steps. Idempotent. Returns the bytes it added.
    // `pool`: threads to make the copies on (nullptr: the calling thread).
    std::size_t interleave_for_int8(std::initializer_list<DType> dtypes = {DType::q4_k, DType::q8_0},
                                    ThreadPool* pool = nullptr);

private:
    class Binder;

    std::filesystem::path path_;
    std::unique_ptr<io::GGUFFile> gguf_;
    std::unique_ptr<io::SafetensorsSet> safetensors_;
    std::unique_ptr<WeightMap> map_;
    ModelConfig config_;
    ModelWeights weights_;
    std::deque<std::vector<float>> small_tensors_;  // f32 copies behind the FloatSpans
    std::deque<Interleaved<block_q4_k_x16>> interleaved_q4_k_;  // behind WeightMatrix::interleaved
    std::deque<Interleaved<block_q8_0_x16>> interleaved_q8_0_;
};

// Looks tensors up by internal name, checks them, and makes views.
class Model::Binder {
public:
    Binder(Model& model) : m_(model), map_(*model.map_), file_(model.map_->file()) {}

    // A (rows, cols) matrix; a 1-D tensor of `cols` elements is accepted as (1, cols).
    WeightMatrix matrix(const std::string& name, std::size_t rows, std::size_t cols, int expert = -1) {
        const io::TensorEntry& e = map_.require(name, expert);
        const bool one_row_vector = rows == 1 && e.shape.size() == 1 && e.shape[0] == cols;
        if (!one_row_vector) expect_shape(e, {rows, cols});
        return view(e, 0, rows, cols);
    }

    // n_expert matrices of (rows, cols): from a fused (n_expert, fused_rows, cols)
    // tensor starting at row `row_offset` of each expert, or from per-expert tensors.
    std::vector<WeightMatrix> experts(const std::string& fused_name, const std::string& per_expert_name,
                                      std::size_t n_expert, std::size_t rows, std::size_t cols,
                                      std::size_t fused_rows, std::size_t row_offset) {
        std::vector<WeightMatrix> out;
        out.reserve(n_expert);
        if (const io::TensorEntry* fused = map_.find(fused_name)) {
            expect_shape(*fused, {n_expert, fused_rows, cols});
            for (std::size_t e = 0; e < n_expert; ++e) out.push_back(view(*fused, e * fused_rows + row_offset, rows, cols));
        } else {
            for (std::size_t e = 0; e < n_expert; ++e) out.push_back(matrix(per_expert_name, rows, cols, static_cast<int>(e)));
        }
        return out;
    }

    // A 1-D tensor of n values widened to f32, with an optional elementwise
    // transform (format conventions, e.g. Qwen3.5's HF norms store w for 1 + w).
    template <class Transform = float (*)(float)>
    FloatSpan vector(const std::string& name, std::size_t n, Transform transform = [](float v) { return v; }) {
        const io::TensorEntry& e = map_.require(name);
        if (e.n_elements() != n)
            throw Error(file_, "tensor '" + e.name + "': " + std::to_string(e.n_elements()) + " elements, expected " +
                                   std::to_string(n));
        std::vector<float>& values = m_.small_tensors_.emplace_back(widen(e));
        for (float& v : values) v = transform(v);
        return {values.data(), values.size()};
    }
    FloatSpan optional_vector(const std::string& name, std::size_t n) {
        return map_.find(name) ? vector(name, n) : FloatSpan{};
    }

    // All elements of a small tensor as f32 (any shape).
    std::vector<float> widen(const io::TensorEntry& e) const {
        const DType t = supported(e);
        std::vector<float> out(e.n_elements());
        for (std::size_t i = 0; i < out.size(); ++i) {
            switch (t) {
                case DType::f32: out[i] = reinterpret_cast<const float*>(e.data)[i]; break;
                case DType::f16: out[i] = f16_to_f32(reinterpret_cast<const f16*>(e.data)[i]); break;
                case DType::bf16: out[i] = bf16_to_f32(reinterpret_cast<const bf16*>(e.data)[i]); break;
                default: throw Error(file_, "tensor '" + e.name + "': a 1-D tensor must be f32, f16 or bf16, found " + e.type_name);
            }
        }
        return out;
    }

    void expect_shape(const io::TensorEntry& e, const std::vector<std::uint64_t>& shape) const {
        if (e.shape == shape) return;
        auto str = [](const std::vector<std::uint64_t>& s) {
            std::string out = "[";
            for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
            return out + "]";
        };
        throw Error(file_, "tensor '" + e.name + "': shape " + str(e.shape) + ", expected " + str(shape));
    }

private:
    DType supported(const io::TensorEntry& e) const {
        if (!e.dtype) throw Error(file_, "tensor '" + e.name + "': type " + e.type_name + " is not supported by moelab");
        return *e.dtype;
    }

    WeightMatrix view(const io::TensorEntry& e, std::size_t first_row, std::size_t rows, std::size_t cols) const {
        const DType t = supported(e);
        if (!ops::has_linear_kernel(t))
            throw Error(file_, "tensor '" + e.name + "': type " + e.type_name + " has no matrix kernel in this build");
        if (cols % dtype_traits(t).block_elems != 0)
            throw Error(file_, "tensor '" + e.name + "': row length " + std::to_string(cols) +
                                   " is not a multiple of the " + e.type_name + " block size");
        WeightMatrix w{t, e.data, rows, cols};
        w.data = e.data + first_row * w.row_bytes();
        if ((first_row + rows) * w.row_bytes() > e.nbytes)  // the reader validated nbytes against the shape
            throw Error(file_, "tensor '" + e.name + "': rows past the end of its data");
        return w;
    }

    Model& m_;
    const WeightMap& map_;
    std::string file_;
};

inline std::size_t Model::interleave_for_int8(std::initializer_list<DType> dtypes, ThreadPool* pool) {
    auto for_ranges = [&](std::size_t n, auto&& f) {
        if (pool) pool->parallel_ranges(n, 1, f);
        else f(std::size_t{0}, n);
    };
    // The matrices to copy, by where their rows lie (a tied LM head is
    // token_embd again: one copy serves both).
    std::vector<WeightMatrix*> todo;
    for_each_matrix(weights_, [&](WeightMatrix& m) {
        if (!m.interleaved && interleavable(m.dtype, m.rows, m.cols) &&
            std::find(dtypes.begin(), dtypes.end(), m.dtype) != dtypes.end())
            todo.push_back(&m);
    });
    std::stable_sort(todo.begin(), todo.end(), [](const WeightMatrix* a, const WeightMatrix* b) { return a->data < b->data; });
    // Matrices that lie back to back (an MoE layer's experts are slices of
    // one tensor) share one copy, cut at the same rows. A copy of 2 MiB or
    // more gets transparent huge pages (InterleavedAllocator), and an
    // expert's 885 KB of Q4_K alone did not: one copy per matrix left 1.42
    // of the MoE Q4_K model's 1.52 GB of copies on 4 KiB pages, one per run
    // 0.07 (docs/kernels.md, "Rows interleaved 16 at a time").
    auto continues = [](const WeightMatrix& prev, const WeightMatrix& next) {
        return next.dtype == prev.dtype && next.cols == prev.cols && prev.rows % kInterleavedRows == 0 &&
               next.data == prev.data + prev.rows * prev.row_bytes();
    };
    std::size_t added = 0;
    for (std::size_t first = 0; first < todo.size();) {
        std::size_t last = first + 1, rows = todo[first]->rows;  // the run [first, last)
        while (last < todo.size() && (todo[last]->data == todo[last - 1]->data || continues(*todo[last - 1], *todo[last]))) {
            if (todo[last]->data != todo[last - 1]->data) rows += todo[last]->rows;
            ++last;
        }
        const WeightMatrix& head = *todo[first];
        auto copy = [&]<class X16>(std::deque<Interleaved<X16>>& store) {
            const Interleaved<X16>& c = store.emplace_back(interleave_rows<X16>(
                reinterpret_cast<const typename X16::Block*>(head.data), rows, head.cols, for_ranges));
            added += c.size() * sizeof(X16);
            const std::size_t group_bytes = head.cols / X16::kWeights * sizeof(X16);
            for (std::size_t i = first; i < last; ++i) {
                const std::size_t row = static_cast<std::size_t>(todo[i]->data - head.data) / head.row_bytes();
                todo[i]->interleaved = reinterpret_cast<const std::byte*>(c.data()) + row / kInterleavedRows * group_bytes;
            }
        };
        if (head.dtype == DType::q4_k) copy(interleaved_q4_k_);
        else copy(interleaved_q8_0_);
        // The copied rows' file pages leave the resident set (they come back
        // from the file if the embedding lookup or the exact mode reads them).
        if (gguf_) gguf_->release(head.data, rows / kInterleavedRows * kInterleavedRows * head.row_bytes());
        first = last;
    }
    return added;
}

inline Model Model::load(const std::filesystem::path& path) {
    Model m;
    m.path_ = path;
    if (std::filesystem::is_directory(path)) {
        const auto config_path = path / "config.json";
        if (!std::filesystem::exists(config_path))
            throw Error(path.string(), "not a Hugging Face model folder: config.json is missing");
        m.config_ = config_from_hf(io::read_json_file(config_path), config_path.string());
        if (m.config_.name.empty()) m.config_.name = path.filename().string();
        m.safetensors_ = std::make_unique<io::SafetensorsSet>(io::SafetensorsSet::open_folder(path));
        m.map_ = std::make_unique<WeightMap>(m.safetensors_->tensors(), SourceFormat::huggingface, path.string());
    } else {
        m.gguf_ = std::make_unique<io::GGUFFile>(path);
        m.config_ = config_from_gguf(*m.gguf_);
        m.map_ = std::make_unique<WeightMap>(m.gguf_->tensors(), SourceFormat::gguf, path.string());
    }

    ModelConfig& c = m.config_;
    Binder bind(m);
    const WeightMap& map = *m.map_;
    const std::string file = map.file();
    const bool hf = c.format == SourceFormat::huggingface;
    const bool qwen35 = c.arch == Arch::qwen35 || c.arch == Arch::qwen35moe;

    // Vocabulary size is whatever the embedding table holds.
    const io::TensorEntry& embd = map.require("token_embd.weight");
    if (embd.shape.size() != 2 || embd.shape[1] != c.n_embd) {
        std::string shape;
        for (auto d : embd.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
        throw Error(file, "tensor '" + embd.name + "': shape [" + shape + "], expected (n_vocab, " +
                              std::to_string(c.n_embd) + ")");
    }
    if (hf && c.n_vocab != embd.shape[0])
        throw Error(file, "config vocab_size " + std::to_string(c.n_vocab) + " but the embedding has " +
                              std::to_string(embd.shape[0]) + " rows");
    c.n_vocab = static_cast<std::size_t>(embd.shape[0]);
    if (c.rope.rot_dims > c.head_dim || c.rope.rot_dims % 2 != 0)
        throw Error(file, "rotary dimensions " + std::to_string(c.rope.rot_dims) + " must be even and <= head_dim " +
                              std::to_string(c.head_dim));
    if (c.n_head_kv == 0 || c.n_head % c.n_head_kv != 0)
        throw Error(file, "attention heads " + std::to_string(c.n_head) + " are not a multiple of key/value heads " +
                              std::to_string(c.n_head_kv));
    if (c.is_moe() && (c.moe.n_expert_used == 0 || c.moe.n_expert_used > c.moe.n_expert))
        throw Error(file, "experts used per token must be in [1, n_expert]");

    // Qwen3.5 norms multiply by (1 + w): GGUF stored 1 + w, HF stores w.
    const auto norm_shift = [hf, qwen35](float w) { return hf && qwen35 ? 1.0f + w : w; };

    ModelWeights& w = m.weights_;
    w.token_embd = bind.matrix("token_embd.weight", c.n_vocab, c.n_embd);
    w.output_norm = bind.vector("output_norm.weight", c.n_embd, norm_shift);
    c.tied_embeddings = map.find("output.weight") == nullptr;
    w.output = c.tied_embeddings ? w.token_embd : bind.matrix("output.weight", c.n_vocab, c.n_embd);
    if (const io::TensorEntry* freqs = map.find("rope_freqs.weight")) {  // GGUF Llama 3.1 scaling
        if (freqs->n_elements() != c.rope.rot_dims / 2)
            throw Error(file, "tensor 'rope_freqs.weight': expected " + std::to_string(c.rope.rot_dims / 2) + " values");
        c.rope.freq_divisors = bind.widen(*freqs);
    }

    const std::size_t D = c.n_embd;
    if (c.n_layer > map.rows().size())  // every layer has at least one tensor
        throw Error(file, std::to_string(c.n_layer) + " layers, but the file holds only " +
                              std::to_string(map.rows().size()) + " tensors");
    w.layers.resize(c.n_layer);
    for (std::size_t il = 0; il < c.n_layer; ++il) {
        LayerWeights& L = w.layers[il];
        const std::string blk = "blk." + std::to_string(il) + ".";
        L.attn_norm = bind.vector(blk + "attn_norm.weight", D, norm_shift);
        L.ffn_norm = bind.vector(blk + "ffn_norm.weight", D, norm_shift);

        if (c.layer_kinds[il] == LayerKind::attention) {
            const std::size_t q_rows = c.q_dim() * (c.attn_output_gate ? 2 : 1);
            L.attn.wq = bind.matrix(blk + "attn_q.weight", q_rows, D);
            L.attn.wk = bind.matrix(blk + "attn_k.weight", c.kv_dim(), D);
            L.attn.wv = bind.matrix(blk + "attn_v.weight", c.kv_dim(), D);
            L.attn.wo = bind.matrix(blk + "attn_output.weight", D, c.q_dim());
            L.attn.bq = bind.optional_vector(blk + "attn_q.bias", c.q_dim());
            L.attn.bk = bind.optional_vector(blk + "attn_k.bias", c.kv_dim());
            L.attn.bv = bind.optional_vector(blk + "attn_v.bias", c.kv_dim());
            if (c.arch == Arch::qwen2 || c.arch == Arch::qwen2moe) {  // these architectures always carry biases
                if (L.attn.bq.empty() || L.attn.bk.empty() || L.attn.bv.empty())
                    throw Error(file, "missing tensor '" + blk + "attn_{q,k,v}.bias'");
            }
            if (c.attn_qk_norm) {
                L.attn.q_norm = bind.vector(blk + "attn_q_norm.weight", c.head_dim, norm_shift);
                L.attn.k_norm = bind.vector(blk + "attn_k_norm.weight", c.head_dim, norm_shift);
            }
        } else {
            const DeltaNetConfig& dn = c.deltanet;
            if (dn.n_key_heads == 0 || dn.n_value_heads % dn.n_key_heads != 0 || dn.conv_kernel == 0)
                throw Error(file, "Gated DeltaNet: value heads must be a positive multiple of key heads");
            const std::size_t qk_dim = dn.n_key_heads * dn.key_head_dim, v_dim = dn.n_value_heads * dn.value_head_dim;
            const std::size_t channels = 2 * qk_dim + v_dim;
            DeltaNetWeights& N = L.deltanet;
            N.in_qkv = bind.matrix(blk + "attn_qkv.weight", channels, D);
            N.in_z = bind.matrix(blk + "attn_gate.weight", v_dim, D);
            N.in_beta = bind.matrix(blk + "ssm_beta.weight", dn.n_value_heads, D);
            N.in_alpha = bind.matrix(blk + "ssm_alpha.weight", dn.n_value_heads, D);
            const io::TensorEntry& conv = map.require(blk + "ssm_conv1d.weight");
            if (conv.n_elements() != channels * dn.conv_kernel)
                throw Error(file, "tensor '" + conv.name + "': expected " + std::to_string(channels) + " x " +
                                      std::to_string(dn.conv_kernel) + " values");
            N.conv = bind.widen(conv);
            N.dt_bias = bind.vector(blk + "ssm_dt.bias", dn.n_value_heads);
            // GGUF stores the decay rate a = -exp(A_log); HF stores A_log.
            N.a = hf ? bind.vector(blk + "ssm_a", dn.n_value_heads, [](float a_log) { return -std::exp(a_log); })
                     : bind.vector(blk + "ssm_a", dn.n_value_heads);
            N.norm = bind.vector(blk + "ssm_norm.weight", dn.value_head_dim);
            N.out = bind.matrix(blk + "ssm_out.weight", D, v_dim);
        }

        if (!c.is_moe()) {
            L.ffn.gate = bind.matrix(blk + "ffn_gate.weight", c.n_ff, D);
            L.ffn.up = bind.matrix(blk + "ffn_up.weight", c.n_ff, D);
            L.ffn.down = bind.matrix(blk + "ffn_down.weight", D, c.n_ff);
            continue;
        }
        const MoEConfig& moe = c.moe;
        const std::size_t E = moe.n_expert, F = moe.n_ff_exp;
        L.moe.router = bind.matrix(blk + "ffn_gate_inp.weight", E, D);
        std::vector<WeightMatrix> gate, up, down;
        if (map.find(blk + "ffn_gate_up_exps.weight")) {  // HF Qwen3.5: fused (E, 2F, D), gate rows first
            gate = bind.experts(blk + "ffn_gate_up_exps.weight", "", E, F, D, 2 * F, 0);
            up = bind.experts(blk + "ffn_gate_up_exps.weight", "", E, F, D, 2 * F, F);
        } else {
            gate = bind.experts(blk + "ffn_gate_exps.weight", blk + "ffn_gate_exps.weight", E, F, D, F, 0);
            up = bind.experts(blk + "ffn_up_exps.weight", blk + "ffn_up_exps.weight", E, F, D, F, 0);
        }
        down = bind.experts(blk + "ffn_down_exps.weight", blk + "ffn_down_exps.weight", E, D, F, D, 0);
        L.moe.experts.resize(E);
        for (std::size_t e = 0; e < E; ++e) L.moe.experts[e] = {gate[e], up[e], down[e]};
        if (moe.n_ff_shexp > 0) {
            L.moe.shared.gate = bind.matrix(blk + "ffn_gate_shexp.weight", moe.n_ff_shexp, D);
            L.moe.shared.up = bind.matrix(blk + "ffn_up_shexp.weight", moe.n_ff_shexp, D);
            L.moe.shared.down = bind.matrix(blk + "ffn_down_shexp.weight", D, moe.n_ff_shexp);
            if (moe.shared_expert_gate) L.moe.shared_gate = bind.matrix(blk + "ffn_gate_inp_shexp.weight", 1, D);
        }
    }
    // HF Llama 3.1 scaling: rot_dims / 2 divisors from rope_scaling. Only now,
    // when an attention layer's q/k weights have matched n_head * head_dim rows
    // of the file: config.json alone could claim head_dim 2^32, and 2^31 floats
    // would be 8 GB. A model with no attention layer never rotates anything.
    const bool any_attention = std::find(c.layer_kinds.begin(), c.layer_kinds.end(), LayerKind::attention) != c.layer_kinds.end();
    if (c.rope.llama3_scaling && c.rope.freq_divisors.empty() && any_attention)
        c.rope.freq_divisors = llama3_freq_divisors(*c.rope.llama3_scaling, c.rope.theta, c.rope.rot_dims);
    return m;
}

}  // namespace moelab
