// SPDX-License-Identifier: MIT
// kernels/cuda/ffn.cu — the dense and the MoE SwiGLU FFN on the GPU, composed
// from the kernels in this folder (no kernel of its own).
//
// Depends on: kernels/cuda/common.cuh (and the host functions of the other .cu files).
//
// CPU reference: moelab::ffn_dense and moelab::ffn_moe with the scalar backend
// (include/moelab/layers/ffn_dense.hpp, ffn_moe.hpp; the GPU MoE has no shared expert).
//
//   dense:  gate = x W_gate^T, up = x W_up^T, gate <- silu(gate) * up, out = gate W_down^T
//   MoE:    logits = x W_router^T -> route -> sort by expert -> grouped gate and up
//           (gathering each expert's tokens) -> swiglu on all sorted rows ->
//           grouped down -> combine with the routing weights
// The MoE FFN is ten launches at any batch size; the dense FFN four.
#include <initializer_list>
#include <string>

#include "common.cuh"

namespace moelab::cuda {
namespace {

void require(bool ok, const char* who, const std::string& what) {
    if (!ok) throw Error(std::string("cuda: ") + who, what);
}
// Built with += rather than "(" + to_string(...): g++ 12 gives a false -Wrestrict on the latter.
std::string dims(std::initializer_list<std::size_t> sizes) {
    std::string s = "(";
    for (std::size_t d : sizes) {
        if (s.size() > 1) s += ", ";
        s += std::to_string(d);
    }
    return s += ")";
}
std::string shape(const DeviceMatrix& m) { return dims({m.rows, m.cols}); }
std::string shape(const DeviceExperts& m) { return dims({m.n_expert, m.rows, m.cols}); }

}  // namespace

void ffn_dense(const DenseFFN& w, const float* x, std::size_t n_tokens, float* out, DenseWorkspace& ws,
               MatmulVersion version) {
    const std::size_t n_ff = w.gate.rows, n_embd = w.gate.cols;
    require(w.up.rows == n_ff && w.up.cols == n_embd && w.down.rows == n_embd && w.down.cols == n_ff, "ffn_dense",
            "inconsistent shapes: gate " + shape(w.gate) + ", up " + shape(w.up) + ", down " + shape(w.down));
    require(n_tokens <= ws.max_tokens && ws.n_ff == n_ff, "ffn_dense",
            "workspace for " + std::to_string(ws.max_tokens) + " tokens x " + std::to_string(ws.n_ff) +
                " features is too small for " + std::to_string(n_tokens) + " x " + std::to_string(n_ff));
    if (n_tokens == 0) return;
    float* gate = ws.gate.data();
    float* up = ws.up.data();
    if (n_tokens == 1) {
        matvec(MatvecVersion::v3_warp_vectorized, w.gate, x, gate);
        matvec(MatvecVersion::v3_warp_vectorized, w.up, x, up);
        swiglu(SwigluVersion::v2_vectorized, gate, up, gate, n_ff);
        matvec(MatvecVersion::v3_warp_vectorized, w.down, gate, out);
        return;
    }
    matmul(version, w.gate, x, n_tokens, gate, n_ff);
    matmul(version, w.up, x, n_tokens, up, n_ff);
    swiglu(SwigluVersion::v2_vectorized, gate, up, gate, n_tokens * n_ff);
    matmul(version, w.down, gate, n_tokens, out, n_embd);
}

void ffn_moe(const MoEFFN& w, const float* x, std::size_t n_tokens, float* out, MoEWorkspace& ws,
             GroupedVersion version) {
    const std::size_t n_expert = w.router.rows, n_embd = w.router.cols, n_ff = w.gate.rows, k = w.n_expert_used;
    require(w.gate.n_expert == n_expert && w.up.n_expert == n_expert && w.down.n_expert == n_expert &&
                w.gate.cols == n_embd && w.up.rows == n_ff && w.up.cols == n_embd && w.down.rows == n_embd &&
                w.down.cols == n_ff,
            "ffn_moe",
            "inconsistent shapes: router " + shape(w.router) + ", gate " + shape(w.gate) + ", up " + shape(w.up) +
                ", down " + shape(w.down));
    require(k >= 1 && k <= n_expert, "ffn_moe",
            "n_expert_used " + std::to_string(k) + " not in [1, " + std::to_string(n_expert) + "]");
    require(n_tokens <= ws.max_tokens && ws.logits.size() >= n_tokens * n_expert && ws.count.size() == n_expert &&
                ws.gate.size() >= n_tokens * k * n_ff && ws.expert_out.size() >= n_tokens * k * n_embd,
            "ffn_moe", "workspace too small for " + std::to_string(n_tokens) + " tokens of this model");
    if (n_tokens == 0) return;
    const std::size_t n_pairs = n_tokens * k;
    const ExpertGroups groups = ws.groups();

    // The router goes through matmul even for one token, so a token's routing
    // is bitwise the same alone or in a batch (a different expert set would be
    // a large, not a last-bit, difference).
    matmul(MatmulVersion::v3_register_tiled, w.router, x, n_tokens, ws.logits.data(), n_expert);
    route(ws.logits.data(), n_tokens, n_expert, k, w.norm_topk_prob, ws.expert_ids.data(), ws.expert_weights.data());
    sort_by_expert(ws.expert_ids.data(), n_tokens, k, n_expert, groups);
    grouped_matmul(version, w.gate, x, groups.slot_token, n_pairs, groups, ws.gate.data());
    grouped_matmul(version, w.up, x, groups.slot_token, n_pairs, groups, ws.up.data());
    swiglu(SwigluVersion::v2_vectorized, ws.gate.data(), ws.up.data(), ws.gate.data(), n_pairs * n_ff);
    grouped_matmul(version, w.down, ws.gate.data(), nullptr, n_pairs, groups, ws.expert_out.data());
    moe_combine(ws.expert_out.data(), groups.pair_slot, ws.expert_weights.data(), n_tokens, k, n_embd, out);
}

}  // namespace moelab::cuda
