// SPDX-License-Identifier: MIT
// moelab/layers/ffn_moe.hpp — the Mixture-of-Experts FFN: a router picks k of
// n_expert SwiGLU FFNs per token and mixes their outputs.
//
// Depends on: moelab/layers/ffn_dense.hpp, moelab/layers/router.hpp, moelab/model/config.hpp,
//             moelab/ops/linear.hpp, moelab/thread_pool.hpp (spin_until).
//
//     out(x) = sum_{e in topk(x)} w_e(x) * FFN_e(x)  [+ sigmoid(g . x) * FFN_shared(x)]
//     PyTorch (per token): sum(w[j] * experts[S[j]](x) for j in range(k)) + torch.sigmoid(g(x)) * shared(x)
//
// Same signature as ffn_dense plus the options, and each expert computes
// exactly what a dense FFN call on its tokens would (its three products are
// merely scheduled together with the other experts' so threads share them):
// the only new machinery is routing and bookkeeping. The batch is
// grouped by expert (a counting sort over the (token, expert) pairs), so each
// selected expert's weights are read once per batch, however many tokens chose
// it. That is the whole cost story of MoE:
//   - one token (decode) reads k experts: n_expert_used / n_expert of the FFN weights;
//   - a batch of B tokens reads every expert that at least one token chose,
//     which tends to all of them as B grows (docs/dense-vs-moe.md).
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/router.hpp"
#include "moelab/model/config.hpp"
#include "moelab/ops/linear.hpp"
#include "moelab/thread_pool.hpp"

namespace moelab {

struct MoEScratch {
    FloatBuffer router_probs;               // (n_tokens, n_expert)
    std::vector<std::uint32_t> expert_ids;  // (n_tokens, n_expert_used): the routing, read it after the call
    FloatBuffer expert_weights;             // (n_tokens, n_expert_used)
    std::vector<std::uint32_t> slot_begin;  // (n_expert + 1): counting-sort offsets
    std::vector<std::uint32_t> slot_pair;   // (n_tokens * n_expert_used): pair index t * k + j, grouped by expert
    std::vector<std::uint32_t> task_expert; // the experts that received tokens, ascending
    FloatBuffer expert_in, expert_out;      // (n_tokens * n_expert_used, n_embd), in slot order
    FloatBuffer expert_gate, expert_up;     // (n_tokens * n_expert_used, n_ff_exp), in slot order
    ops::RoundedActivations expert_in_rounded, expert_hidden_rounded;  // the same rows rounded (int8, bf16 modes)
    std::vector<std::atomic<std::uint32_t>> pending;  // (n_expert): per chosen expert, what its down tasks wait for
    FloatBuffer shared_out;                 // (n_tokens, n_embd)
    FloatBuffer shared_gate_logits;         // (n_tokens)
    DenseFFNScratch dense;
};

// x: (n_tokens, n_embd) -> out: (n_tokens, n_embd). out must not alias x.
template <class Backend>
void ffn_moe(Context<Backend> ctx, const MoEFFNWeights& w, const MoEConfig& moe, const float* x, std::size_t n_tokens,
             float* out, MoEScratch& s) {
    const std::size_t E = moe.n_expert, k = moe.n_expert_used, D = w.router.cols;

    // 1. Route every token.
    float* probs = scratch(s.router_probs, n_tokens * E);
    linear(ctx, w.router, x, n_tokens, probs);
    s.expert_ids.resize(n_tokens * k);
    float* weights = scratch(s.expert_weights, n_tokens * k);
    route(ctx.backend, probs, n_tokens, moe, s.expert_ids.data(), weights);

    // 2. Group the (token, expert) pairs by expert.
    s.slot_begin.assign(E + 1, 0);
    for (std::uint32_t e : s.expert_ids) ++s.slot_begin[e + 1];
    for (std::size_t e = 0; e < E; ++e) s.slot_begin[e + 1] += s.slot_begin[e];
    s.slot_pair.resize(n_tokens * k);
    {
        std::vector<std::uint32_t> fill(s.slot_begin.begin(), s.slot_begin.end() - 1);
        for (std::size_t pair = 0; pair < n_tokens * k; ++pair)
            s.slot_pair[fill[s.expert_ids[pair]]++] = static_cast<std::uint32_t>(pair);
    }

    // 3. Each chosen expert runs once on all of its tokens. A batch's inputs
    //    are gathered in slot order (grouped by expert; one token's are read
    //    in place), then every expert's SwiGLU runs as (expert, block of
    //    rows) tasks of one fork-join: gate, up and silu(gate) * up (each task
    //    finishes the hidden units it computed, as ffn_dense does), then
    //    down. One fork-join per layer instead of three per expert: decoding
    //    one token through 8 experts of 768 rows would otherwise pay 24
    //    synchronisations for ~10 MB of weights (docs/kernels.md). Each task
    //    writes only its own rows, and by the kernel contract a row's result
    //    does not depend on the split, so this is the same arithmetic as
    //    ffn_dense on each expert.
    const std::size_t n_pairs = n_tokens * k, F = w.experts.empty() ? 0 : w.experts[0].gate.rows;
    float* hidden = scratch(s.expert_gate, n_pairs * F);  // (n_pairs, F): silu(gate) * up
    float* up = scratch(s.expert_up, n_pairs * F);        // (n_pairs, F)
    float* yout = scratch(s.expert_out, n_pairs * D);   // (n_pairs, D)
    // The experts' input rows: slot i is pair slot_pair[i]'s token. One token
    // (decode) is every pair's input as it stands: nothing is gathered, and a
    // reduced-precision mode rounds it once instead of k times (about 1.6 us
    // per row of 2,048 in the int8 mode, docs/kernels.md).
    const bool one_token = n_tokens == 1;
    const float* xin = x;
    if (!one_token) {
        float* gathered = scratch(s.expert_in, n_pairs * D);
        for (std::size_t i = 0; i < n_pairs; ++i) {
            const float* src = x + (s.slot_pair[i] / k) * D;
            for (std::size_t d = 0; d < D; ++d) gathered[i * D + d] = src[d];
        }
        xin = gathered;
    }
    // Tasks: (expert, block of rows) for every expert with tokens. A block is
    // 64 rows, or more rows of short ones, up to about kTaskBytes of weights:
    // each task is a fresh stream for the prefetchers and a claim on the
    // pool's counter. 64-row blocks of Q4_K's short rows (432 bytes for a
    // 768-wide down projection) made 256 tasks of 27 KB per decoded layer;
    // 256 KB tasks left Q4_K's gate and up phase at 345-401 us per decoded
    // layer, 1 MB tasks 262-341 us, with Q8_0, bf16 and f32 unchanged within
    // the noise (docs/kernels.md).
    constexpr std::size_t kTaskBytes = 1024 * 1024;
    s.task_expert.clear();
    for (std::size_t e = 0; e < E; ++e)
        if (s.slot_begin[e + 1] > s.slot_begin[e]) s.task_expert.push_back(static_cast<std::uint32_t>(e));
    const std::size_t n_used = s.task_expert.size();
    // The fewest blocks of at most max_rows, then rows shared evenly among
    // them (768 Q4_K gate and up rows: 384 + 384, not 448 + 320).
    struct RowBlocks {
        std::size_t blocks = 0, rows = 0;  // per expert: `blocks` blocks of `rows` rows (the last may be shorter)
    };
    auto row_blocks = [](std::size_t n_rows, std::size_t bytes_per_row) {
        const std::size_t grains = std::max<std::size_t>(4, kTaskBytes / (bytes_per_row * ops::kRowGrain));
        const std::size_t max_rows = grains * ops::kRowGrain;
        const std::size_t blocks = (n_rows + max_rows - 1) / max_rows;
        return RowBlocks{blocks, blocks == 0 ? 0 : ((n_rows + blocks - 1) / blocks + ops::kRowGrain - 1) / ops::kRowGrain * ops::kRowGrain};
    };
    const DenseFFNWeights first_expert = w.experts.empty() ? DenseFFNWeights{} : w.experts[0];  // views: a cheap copy
    const RowBlocks gate_up = row_blocks(F, w.experts.empty() ? 1 : first_expert.gate.row_bytes() + first_expert.up.row_bytes());
    const RowBlocks down = row_blocks(D, w.experts.empty() ? 1 : first_expert.down.row_bytes());

    // In a reduced-precision mode each expert input row is rounded once here,
    // not once per task (every expert's gate and up tasks read the same rows).
    // The experts of one layer share their dtypes (GGUF stores them as one
    // tensor); linear_rows() still picks per matrix, so a mixed set only falls
    // back to the exact path.
    const ops::ProductInput in = ops::round_for(ctx.backend, ctx.activations, {&first_expert.gate, &first_expert.up},
                                                xin, one_token ? 1 : n_pairs, D, s.expert_in_rounded, &ctx.pool);
    // The hidden units are rounded for the down projections expert by
    // expert, as each expert's are complete (below).
    const WeightMatrix* down_reader[] = {&first_expert.down};
    const ops::Rounding hidden_rounding = ops::rounding_for(ctx.backend, ctx.activations, down_reader);
    const ops::ProductInput h = ops::prepare_rounding(hidden_rounding, hidden, n_pairs, F, s.expert_hidden_rounded);

    // One fork-join for both products of every chosen expert: the gate and up
    // tasks of all experts come first, then the down tasks. An expert's down
    // tasks wait only for that expert's gate and up blocks, not for every
    // expert's: the thread whose gate and up tasks ran out goes on to a down
    // projection while the other finishes its last block (a barrier there
    // cost ~6% of the thread time of the gate and up phase, decoding MoE
    // Q4_K; docs/kernels.md). The last gate and up block of an expert rounds
    // its hidden units. Tasks are claimed in index order, so when a down task
    // is claimed every gate and up task has been claimed by a thread that runs
    // it without waiting: the wait always ends. pending[i], for expert
    // task_expert[i]: its gate and up blocks still running, plus one for the
    // rounding; 0 when its down tasks may start (at once if there are no
    // hidden units to compute).
    if (s.pending.size() < n_used) s.pending = std::vector<std::atomic<std::uint32_t>>(E);
    const std::uint32_t pending_at_start = gate_up.blocks == 0 ? 0 : static_cast<std::uint32_t>(gate_up.blocks + 1);
    for (std::size_t i = 0; i < n_used; ++i) s.pending[i].store(pending_at_start, std::memory_order_relaxed);
    std::atomic<bool> failed{false};  // a gate or up task threw: the waiting down tasks give up
    const std::size_t n_gate_up_tasks = n_used * gate_up.blocks;
    ctx.pool.parallel_for(n_gate_up_tasks + n_used * down.blocks, [&](std::size_t task) {
        const bool is_gate_up = task < n_gate_up_tasks;
        const RowBlocks& blocks = is_gate_up ? gate_up : down;
        const std::size_t t = is_gate_up ? task : task - n_gate_up_tasks, i = t / blocks.blocks;
        const std::size_t e = s.task_expert[i], first = s.slot_begin[e], count = s.slot_begin[e + 1] - first;
        const std::size_t r0 = (t % blocks.blocks) * blocks.rows;
        if (is_gate_up) {
            const std::size_t r1 = std::min(F, r0 + blocks.rows);
            try {
                const ops::ProductInput rows = in.from(one_token ? 0 : first);
                ops::linear_rows(ctx.backend, w.experts[e].gate, r0, r1, rows, count, hidden + first * F, F);
                ops::linear_rows(ctx.backend, w.experts[e].up, r0, r1, rows, count, up + first * F, F);
                for (std::size_t j = first; j < first + count; ++j)  // in place: hidden <- silu(gate) * up, elementwise
                    swiglu(ctx.backend, hidden + j * F + r0, up + j * F + r0, hidden + j * F + r0, r1 - r0);
                if (s.pending[i].fetch_sub(1, std::memory_order_acq_rel) == 2) {  // the expert's last block
                    ops::round_rows(hidden_rounding, hidden, first, first + count, F, s.expert_hidden_rounded);
                    s.pending[i].store(0, std::memory_order_release);
                }
            } catch (...) {
                failed.store(true, std::memory_order_relaxed);
                throw;
            }
            return;
        }
        spin_until([&] { return s.pending[i].load(std::memory_order_acquire) == 0 || failed.load(std::memory_order_relaxed); });
        if (failed.load(std::memory_order_relaxed)) return;
        ops::linear_rows(ctx.backend, w.experts[e].down, r0, std::min(D, r0 + blocks.rows), h.from(first), count,
                         yout + first * D, D);
    });
    // Mixing, in the fixed order (expert, token): independent of the thread count.
    for (std::size_t i = 0; i < n_tokens * D; ++i) out[i] = 0.0f;
    for (std::size_t i = 0; i < n_pairs; ++i) {
        const std::size_t pair = s.slot_pair[i];
        axpy(ctx.backend, weights[pair], yout + i * D, out + (pair / k) * D, D);
    }

    // 4. The shared expert sees every token, scaled by its own sigmoid gate.
    if (!w.shared.gate.empty()) {
        float* shared = scratch(s.shared_out, n_tokens * D);
        ffn_dense(ctx, w.shared, x, n_tokens, shared, s.dense);
        float* gate_logits = scratch(s.shared_gate_logits, n_tokens);
        if (!w.shared_gate.empty()) linear(ctx, w.shared_gate, x, n_tokens, gate_logits);
        for (std::size_t t = 0; t < n_tokens; ++t) {
            const float scale = w.shared_gate.empty() ? 1.0f : 1.0f / (1.0f + std::exp(-gate_logits[t]));
            axpy(ctx.backend, scale, shared + t * D, out + t * D, D);
        }
    }
}

}  // namespace moelab
