// SPDX-License-Identifier: MIT
// Loading: every fixture model opens from both formats into one description,
// and the two descriptions agree value by value once the documented layout
// differences (weight_map.hpp) are undone.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "moelab/model/cost.hpp"
#include "moelab/model/model.hpp"
#include "moelab/ops/embedding.hpp"
#include "support/fixtures.hpp"

using namespace moelab;

namespace {

std::vector<float> values(const WeightMatrix& w) {
    std::vector<float> out(w.rows * w.cols);
    for (std::size_t r = 0; r < w.rows; ++r) ops::row_to_f32(w, r, out.data() + r * w.cols);
    return out;
}
std::vector<float> values(const FloatSpan& v) { return {v.data, v.data + v.size}; }

// GGUF's llama converter permuted the rows of each Q/K head so that
// interleaved-pair RoPE applies: HF row (half * head_dim/2 + i) is GGUF row (2i + half).
std::size_t llama_qk_row(std::size_t hf_row, std::size_t head_dim) {
    const std::size_t head = hf_row / head_dim, j = hf_row % head_dim, half = j / (head_dim / 2), i = j % (head_dim / 2);
    return head * head_dim + 2 * i + half;
}

// The Qwen3.5 GGUF converter re-tiled value heads: HF head (i * r + j), which
// belongs to key head i, is GGUF head (j * n_key_heads + i).
std::size_t retiled_head(std::size_t hf_head, std::size_t n_key_heads, std::size_t n_value_heads) {
    const std::size_t r = n_value_heads / n_key_heads;
    return (hf_head % r) * n_key_heads + hf_head / r;
}

struct Comparer {
    std::string model;
    std::size_t compared = 0;

    // gguf[map(i)] == hf[i] for all i, exactly (both hold the same bf16 values).
    void same(const std::string& what, const std::vector<float>& gguf, const std::vector<float>& hf,
              const std::function<std::size_t(std::size_t)>& map = nullptr, double rel_tol = 0.0) {
        INFO(model << ": " << what);
        REQUIRE(gguf.size() == hf.size());
        for (std::size_t i = 0; i < hf.size(); ++i) {
            const float g = gguf[map ? map(i) : i];
            if (!(std::abs(g - hf[i]) <= rel_tol * std::abs(hf[i]))) {
                INFO("element " << i << ": gguf " << g << ", hf " << hf[i]);
                REQUIRE(false);
            }
        }
        ++compared;
    }
    void same(const std::string& what, const WeightMatrix& g, const WeightMatrix& h,
              const std::function<std::size_t(std::size_t)>& row_map = nullptr) {
        REQUIRE(g.rows == h.rows);
        REQUIRE(g.cols == h.cols);
        const std::size_t cols = h.cols;
        same(what, values(g), values(h),
             row_map ? std::function([&](std::size_t i) { return row_map(i / cols) * cols + i % cols; }) : nullptr);
    }
};

}  // namespace

TEST_CASE("GGUF and Hugging Face twins describe the same model, tensor by tensor", "[model][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    const nlohmann::json manifest = test::manifest();
    std::size_t models = 0;
    for (const auto& entry : manifest["models"]) {
        if (!entry.contains("gguf") || !entry.contains("hf")) continue;
        const Model g = Model::load(test::fixtures_dir() / entry["gguf"].get<std::string>());
        const Model h = Model::load(test::fixtures_dir() / entry["hf"].get<std::string>());
        const ModelConfig &cg = g.config(), &ch = h.config();
        Comparer cmp{entry["name"]};
        INFO(cmp.model);

        // Hyperparameters agree, except the pairing choice that compensates the permutation.
        CHECK(cg.arch == ch.arch);
        CHECK(cg.n_vocab == ch.n_vocab);
        CHECK(cg.n_embd == ch.n_embd);
        CHECK(cg.n_layer == ch.n_layer);
        CHECK(cg.n_head == ch.n_head);
        CHECK(cg.n_head_kv == ch.n_head_kv);
        CHECK(cg.head_dim == ch.head_dim);
        CHECK(cg.n_ff == ch.n_ff);
        CHECK(cg.rms_eps == Approx(ch.rms_eps).epsilon(1e-6));
        CHECK(cg.rope.theta == ch.rope.theta);
        CHECK(cg.rope.rot_dims == ch.rope.rot_dims);
        CHECK(cg.moe.n_expert == ch.moe.n_expert);
        CHECK(cg.moe.n_expert_used == ch.moe.n_expert_used);
        CHECK(cg.moe.n_ff_exp == ch.moe.n_ff_exp);
        CHECK(cg.moe.n_ff_shexp == ch.moe.n_ff_shexp);
        CHECK(cg.moe.norm_topk_prob == ch.moe.norm_topk_prob);
        CHECK(cg.tied_embeddings == ch.tied_embeddings);
        CHECK(cg.layer_kinds == ch.layer_kinds);
        // Llama 3.1 scaling: GGUF stores the divisors, HF derives them from rope_scaling.
        REQUIRE(cg.rope.freq_divisors.size() == ch.rope.freq_divisors.size());
        cmp.same("rope frequency divisors", cg.rope.freq_divisors, ch.rope.freq_divisors, nullptr, 1e-6);
        const bool permuted_qk = cg.rope.style != ch.rope.style;
        CHECK((permuted_qk == (cg.arch == Arch::llama)));

        const ModelWeights &wg = g.weights(), &wh = h.weights();
        cmp.same("token_embd", wg.token_embd, wh.token_embd);
        cmp.same("output", wg.output, wh.output);
        cmp.same("output_norm", values(wg.output_norm), values(wh.output_norm));
        for (std::size_t il = 0; il < cg.n_layer; ++il) {
            const LayerWeights &lg = wg.layers[il], &lh = wh.layers[il];
            const std::string blk = "blk." + std::to_string(il) + ".";
            cmp.same(blk + "attn_norm", values(lg.attn_norm), values(lh.attn_norm));
            cmp.same(blk + "ffn_norm", values(lg.ffn_norm), values(lh.ffn_norm));
            if (cg.layer_kinds[il] == LayerKind::attention) {
                const std::size_t hd = cg.head_dim;
                auto qk_map = [&](std::size_t r) { return permuted_qk ? llama_qk_row(r, hd) : r; };
                cmp.same(blk + "attn_q", lg.attn.wq, lh.attn.wq, qk_map);
                cmp.same(blk + "attn_k", lg.attn.wk, lh.attn.wk, qk_map);
                cmp.same(blk + "attn_v", lg.attn.wv, lh.attn.wv);
                cmp.same(blk + "attn_output", lg.attn.wo, lh.attn.wo);
                // Biases follow their weight's rows (the llama permutation included).
                cmp.same(blk + "attn_q.bias", values(lg.attn.bq), values(lh.attn.bq), qk_map);
                cmp.same(blk + "attn_k.bias", values(lg.attn.bk), values(lh.attn.bk), qk_map);
                cmp.same(blk + "attn_v.bias", values(lg.attn.bv), values(lh.attn.bv));
                // Qwen2's q/k/v biases are real tensors in both twins, not empty spans compared empty.
                if (cg.arch == Arch::qwen2 || cg.arch == Arch::qwen2moe) {
                    CHECK(lh.attn.bq.size == cg.q_dim());
                    CHECK(lh.attn.bk.size == cg.kv_dim());
                    CHECK(lh.attn.bv.size == cg.kv_dim());
                }
                cmp.same(blk + "attn_q_norm", values(lg.attn.q_norm), values(lh.attn.q_norm));
                cmp.same(blk + "attn_k_norm", values(lg.attn.k_norm), values(lh.attn.k_norm));
            } else {
                const DeltaNetConfig& dn = cg.deltanet;
                const std::size_t nk = dn.n_key_heads, nv = dn.n_value_heads, dk = dn.key_head_dim, dv = dn.value_head_dim;
                const std::size_t qk = nk * dk, channels = 2 * qk + nv * dv;
                // Rows/values indexed by value head (h, i) map through the re-tiling.
                auto vhead_row = [&](std::size_t r, std::size_t width) {
                    return retiled_head(r / width, nk, nv) * width + r % width;
                };
                auto qkv_row = [&](std::size_t r) { return r < 2 * qk ? r : 2 * qk + vhead_row(r - 2 * qk, dv); };
                cmp.same(blk + "ssm qkv", lg.deltanet.in_qkv, lh.deltanet.in_qkv, qkv_row);
                cmp.same(blk + "ssm z", lg.deltanet.in_z, lh.deltanet.in_z, [&](std::size_t r) { return vhead_row(r, dv); });
                cmp.same(blk + "ssm beta", lg.deltanet.in_beta, lh.deltanet.in_beta, [&](std::size_t r) { return vhead_row(r, 1); });
                cmp.same(blk + "ssm alpha", lg.deltanet.in_alpha, lh.deltanet.in_alpha, [&](std::size_t r) { return vhead_row(r, 1); });
                const std::size_t K = dn.conv_kernel;
                cmp.same(blk + "ssm conv", lg.deltanet.conv, lh.deltanet.conv,
                         [&](std::size_t i) { return qkv_row(i / K) * K + i % K; });
                cmp.same(blk + "ssm dt_bias", values(lg.deltanet.dt_bias), values(lh.deltanet.dt_bias),
                         [&](std::size_t i) { return vhead_row(i, 1); });
                // a = -exp(A_log): GGUF's converter computed it, we compute it
                // from HF's A_log in f32; both round one exp (<= 1 ulp each).
                cmp.same(blk + "ssm a", values(lg.deltanet.a), values(lh.deltanet.a),
                         [&](std::size_t i) { return vhead_row(i, 1); }, 2.0 / (1 << 23));
                cmp.same(blk + "ssm norm", values(lg.deltanet.norm), values(lh.deltanet.norm));
                // out_proj's *columns* are indexed by value head.
                REQUIRE(lg.deltanet.out.cols == channels - 2 * qk);
                const std::size_t vcols = nv * dv;
                cmp.same(blk + "ssm out", values(lg.deltanet.out), values(lh.deltanet.out),
                         [&](std::size_t i) { return i / vcols * vcols + vhead_row(i % vcols, dv); });
            }
            if (!cg.is_moe()) {
                cmp.same(blk + "ffn_gate", lg.ffn.gate, lh.ffn.gate);
                cmp.same(blk + "ffn_up", lg.ffn.up, lh.ffn.up);
                cmp.same(blk + "ffn_down", lg.ffn.down, lh.ffn.down);
                continue;
            }
            cmp.same(blk + "router", lg.moe.router, lh.moe.router);
            REQUIRE(lg.moe.experts.size() == lh.moe.experts.size());
            for (std::size_t e = 0; e < lg.moe.experts.size(); ++e) {
                const std::string ex = blk + "expert " + std::to_string(e) + " ";
                cmp.same(ex + "gate", lg.moe.experts[e].gate, lh.moe.experts[e].gate);
                cmp.same(ex + "up", lg.moe.experts[e].up, lh.moe.experts[e].up);
                cmp.same(ex + "down", lg.moe.experts[e].down, lh.moe.experts[e].down);
            }
            if (!lh.moe.shared.gate.empty()) {
                cmp.same(blk + "shared gate", lg.moe.shared.gate, lh.moe.shared.gate);
                cmp.same(blk + "shared up", lg.moe.shared.up, lh.moe.shared.up);
                cmp.same(blk + "shared down", lg.moe.shared.down, lh.moe.shared.down);
                cmp.same(blk + "shared expert gate", lg.moe.shared_gate, lh.moe.shared_gate);
            }
        }
        // Same parameter counts (bytes differ: GGUF twins are f32, HF twins bf16).
        CHECK(model_cost(cg, wg).total_params == model_cost(ch, wh).total_params);
        CHECK(model_cost(cg, wg).active_params == model_cost(ch, wh).active_params);
        // The analytic count from hyperparameters alone agrees with the weights.
        CHECK(model_cost_from_config(cg, 4).total_params == model_cost(cg, wg).total_params);
        CHECK(model_cost_from_config(cg, 4).active_params == model_cost(cg, wg).active_params);
        CHECK(model_cost_from_config(cg, 4).bytes_per_token == model_cost(cg, wg).bytes_per_token);  // f32 GGUF
        CHECK(model_cost_from_config(ch, 4).kv_bytes_per_token == model_cost(ch, wh).kv_bytes_per_token);
        CHECK(model_cost_from_config(ch, 4).recurrent_bytes_per_sequence == model_cost(ch, wh).recurrent_bytes_per_sequence);
        WARN(cmp.model << ": " << cmp.compared << " tensors equal");
        ++models;
    }
    REQUIRE(models > 0);
}

// forward_flops() against a count made independently, matrix by matrix, from
// the weights a token actually goes through (k experts of each MoE layer), and
// against itself: one prefill of n tokens = n single-token steps at growing
// positions, less the LM head those steps add (it runs once per forward).
TEST_CASE("forward_flops counts 2 FLOPs per weight a token uses, the LM head once, and attention", "[model][fixtures]") {
    MOELAB_REQUIRE_FIXTURES();
    for (const char* name : {"qwen3-dense", "qwen3-moe", "qwen2-moe", "qwen35-moe"}) {
        INFO(name);
        const Model model = Model::load(test::fixtures_dir() / "models" / (std::string(name) + ".gguf"));
        const ModelConfig& c = model.config();
        const ModelWeights& w = model.weights();
        const ModelCost cost = model_cost(c, w);
        double per_token = 0, attention_layers = 0;  // multiply-adds per token, excluding embedding and LM head
        auto m = [&](const WeightMatrix& x) { per_token += static_cast<double>(x.rows) * static_cast<double>(x.cols); };
        auto v = [&](const FloatSpan& x) { per_token += static_cast<double>(x.size); };
        auto ffn = [&](const DenseFFNWeights& f) { m(f.gate), m(f.up), m(f.down); };
        v(w.output_norm);
        for (std::size_t il = 0; il < c.n_layer; ++il) {
            const LayerWeights& L = w.layers[il];
            v(L.attn_norm), v(L.ffn_norm);
            if (c.layer_kinds[il] == LayerKind::attention) {
                ++attention_layers;
                m(L.attn.wq), m(L.attn.wk), m(L.attn.wv), m(L.attn.wo);
                v(L.attn.bq), v(L.attn.bk), v(L.attn.bv), v(L.attn.q_norm), v(L.attn.k_norm);
            } else {
                const DeltaNetWeights& N = L.deltanet;
                m(N.in_qkv), m(N.in_z), m(N.in_beta), m(N.in_alpha), m(N.out);
                per_token += static_cast<double>(N.conv.size());
                v(N.dt_bias), v(N.a), v(N.norm);
            }
            if (!c.is_moe()) {
                ffn(L.ffn);
                continue;
            }
            m(L.moe.router);
            for (std::size_t e = 0; e < c.moe.n_expert_used; ++e) ffn(L.moe.experts[e]);  // experts share a shape
            if (!L.moe.shared.gate.empty()) ffn(L.moe.shared);
            if (!L.moe.shared_gate.empty()) m(L.moe.shared_gate);
        }
        const double head = static_cast<double>(w.output.rows) * static_cast<double>(w.output.cols);
        const double q_dim = static_cast<double>(c.q_dim());
        for (const std::size_t n_past : {0, 5}) {
            for (const std::size_t n : {1, 7}) {
                const double N = static_cast<double>(n), P = static_cast<double>(n_past);
                double attention = 0;  // 4 x q_dim per cached position each token attends to
                for (std::size_t t = 0; t < n; ++t) attention += 4 * q_dim * (P + static_cast<double>(t) + 1);
                const double expected = 2 * per_token * N + 2 * head + attention * attention_layers;
                CHECK_THAT(forward_flops(c, w, cost, n, n_past), Catch::Matchers::WithinRel(expected, 1e-12));
            }
        }
        double steps = 0;
        for (std::size_t p = 0; p < 7; ++p) steps += forward_flops(c, w, cost, 1, p) - 2 * head;
        CHECK_THAT(forward_flops(c, w, cost, 7) - 2 * head, Catch::Matchers::WithinRel(steps, 1e-12));
    }
}
