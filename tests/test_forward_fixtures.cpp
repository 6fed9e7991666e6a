// SPDX-License-Identifier: MIT
// The forward pass against an independent engine: for every f32 model in
// ../shared/fixtures/manifest.json, loaded from its GGUF file and from its
// Hugging Face folder, with every backend, moelab must reproduce llama.cpp's
// logits at every position within the manifest's tolerance, and greedy
// decoding of case c0 through the cache must pick the same tokens with the
// same logits at each step. Nothing about a fixture is hard-coded here.
// For the MoE models, the routing trace (Transformer::record_routing) has one
// entry per (layer, position) with k distinct experts, best first, weighted as
// the router defines; at layer 0 it equals the router recomputed in double from
// the weights, within a derived bound.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <numeric>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "support/backends.hpp"
#include "support/compare.hpp"
#include "support/error_bounds.hpp"
#include "support/fixtures.hpp"
#include "support/transformers.hpp"

using namespace moelab;
namespace fs = std::filesystem;

namespace {

std::vector<std::int32_t> token_list(const nlohmann::json& j) { return j.get<std::vector<std::int32_t>>(); }

// Every (model, format) pair the manifest lists with f32 weights.
struct Source {
    std::string model, format;
    fs::path path;
    nlohmann::json entry;
};
std::vector<Source> f32_sources() {
    std::vector<Source> out;
    const nlohmann::json manifest = test::manifest();
    for (const auto& m : manifest["models"]) {
        if (m["weights"] != "f32") continue;
        for (const char* format : {"gguf", "hf"})
            if (m.contains(format)) out.push_back({m["name"], format, test::fixtures_dir() / m[format].get<std::string>(), m});
    }
    return out;
}

}  // namespace

TEMPLATE_TEST_CASE("every position's logits match llama.cpp, both formats", "[forward][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t compared = 0;
    for (const Source& src : f32_sources()) {
        const double tolerance = src.entry["tolerance"]["max_abs_logit"];
        const Model model = Model::load(src.path);
        const std::size_t V = model.config().n_vocab;
        REQUIRE(V == src.entry["n_vocab"].get<std::size_t>());
        Transformer<TestType> transformer(model, pool);
        for (const auto& c : src.entry["cases"]) {
            const auto tokens = token_list(c["tokens"]);
            const auto ref = test::read_f32(test::fixtures_dir() / c["logits"].get<std::string>());
            REQUIRE(ref.size() == tokens.size() * V);
            std::vector<float> logits(tokens.size() * V);
            transformer.reset();
            transformer.forward(tokens, logits.data());
            const auto diff = test::max_abs_diff(logits.data(), ref.data(), logits.size());
            INFO(src.model << " (" << src.format << ", " << TestType::name << ", " << c["logits"] << "): "
                           << test::describe(diff, V) << ", tolerance " << tolerance);
            CHECK(diff.value <= tolerance);
            ++compared;
        }
    }
    WARN("compared " << compared << " prompts with backend " << TestType::name);
    REQUIRE(compared > 0);
}

TEMPLATE_TEST_CASE("greedy decoding through the cache reproduces greedy and gen_logits", "[forward][fixtures]",
                   MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t compared = 0;
    for (const Source& src : f32_sources()) {
        const auto& c0 = src.entry["cases"][0];
        if (!c0.contains("greedy")) continue;
        const double tolerance = src.entry["tolerance"]["max_abs_logit"];
        const Model model = Model::load(src.path);
        const std::size_t V = model.config().n_vocab;
        const auto tokens = token_list(c0["tokens"]);
        const auto greedy = token_list(c0["greedy"]);
        const auto gen_ref = test::read_f32(test::fixtures_dir() / c0["gen_logits"].get<std::string>());
        REQUIRE(gen_ref.size() >= greedy.size() * V);

        Transformer<TestType> transformer(model, pool);
        std::vector<float> last(V);
        transformer.forward(tokens, last.data(), /*all_logits=*/false);
        std::vector<std::int32_t> chosen;
        for (std::size_t step = 0; step < greedy.size(); ++step) {
            chosen.push_back(static_cast<std::int32_t>(test::argmax(last.data(), V)));
            const std::int32_t next = chosen.back();
            transformer.forward(std::span(&next, 1), last.data());
            // Row `step` of gen_logits is the output after greedy[step] is fed.
            const auto diff = test::max_abs_diff(last.data(), gen_ref.data() + step * V, V);
            INFO(src.model << " (" << src.format << ", " << TestType::name << ") decode step " << step << ": "
                           << test::describe(diff, V));
            CHECK(diff.value <= tolerance);
        }
        INFO(src.model << " (" << src.format << ", " << TestType::name << ")");
        CHECK(chosen == greedy);
        ++compared;
    }
    REQUIRE(compared > 0);
}

TEMPLATE_TEST_CASE("prefill in one batch and token-by-token decode agree", "[forward][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    for (const Source& src : f32_sources()) {
        if (src.format != "gguf") continue;
        const double tolerance = src.entry["tolerance"]["max_abs_logit"];
        const Model model = Model::load(src.path);
        const std::size_t V = model.config().n_vocab;
        const auto tokens = token_list(src.entry["cases"][0]["tokens"]);
        Transformer<TestType> batch(model, pool), stepwise(model, pool);
        std::vector<float> all(tokens.size() * V), one(V);
        batch.forward(tokens, all.data());
        for (std::size_t t = 0; t < tokens.size(); ++t) {
            stepwise.forward(std::span(&tokens[t], 1), one.data());
            const auto diff = test::max_abs_diff(one.data(), all.data() + t * V, V);
            INFO(src.model << " position " << t << ": " << test::describe(diff, V));
            // Both are within `tolerance` of the same reference, hence within 2x of each other.
            CHECK(diff.value <= 2 * tolerance);
        }
    }
}

// ---------------------------------------------------------------------------
// Routing instrumentation (Transformer::record_routing, `moelab logits --routing`).
// ---------------------------------------------------------------------------
namespace {

// The f32 sources whose model has MoE layers (read from the loaded config, not the manifest).
struct MoESource {
    Source source;
    Model model;
};
std::vector<MoESource> moe_sources() {
    std::vector<MoESource> out;
    for (Source& src : f32_sources()) {
        Model model = Model::load(src.path);
        if (model.config().is_moe()) out.push_back({std::move(src), std::move(model)});
    }
    return out;
}

using Entry = std::pair<std::uint32_t, std::uint32_t>;  // (layer, position)
std::vector<Entry> entries_of(const RoutingTrace& trace) {
    std::vector<Entry> out;
    for (std::size_t i = 0; i < trace.layer.size(); ++i) out.emplace_back(trace.layer[i], trace.position[i]);
    return out;
}
// The entries forward() appends for n tokens from position pos0: every layer, each of its positions.
void append_expected(std::vector<Entry>& out, std::size_t n_layer, std::size_t pos0, std::size_t n) {
    for (std::size_t il = 0; il < n_layer; ++il)
        for (std::size_t t = 0; t < n; ++t) out.emplace_back(il, pos0 + t);
}

// What holds for every recorded decision, whatever the weights and inputs.
// The router's probabilities p~ are softmax outputs, each within
// s = softmax_relative_bound(n_expert) of the exact softmax of its f32 logits
// (the kernel tests hold every backend to it).
//  * Without renormalisation the weights are p~ itself: the k largest of a
//    distribution sum to at least k / n_expert and at most 1, so to within s of that.
//  * With it, w_j = fl(p~_j / fl(sum_S p~)): the k - 1 f32 additions give
//    gamma(k - 1), the division u, so sum_j w_j is within
//    compose(through_division(gamma(k - 1)), u) of 1 (plus k 2^-53 for the
//    double sum here).
template <class B>
void check_decisions(const RoutingTrace& trace, const MoEConfig& moe) {
    using namespace test;
    const std::size_t k = moe.n_expert_used, E = moe.n_expert, n = trace.layer.size();
    REQUIRE(trace.n_expert_used == k);
    REQUIRE(trace.position.size() == n);
    REQUIRE(trace.experts.size() == n * k);
    REQUIRE(trace.weights.size() == n * k);
    const double s = softmax_relative_bound<B>(E);
    const double renorm = compose(through_division(gamma_n(k - 1.0)), u) + k * 0x1p-53;
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint32_t* ids = trace.experts.data() + i * k;
        const float* w = trace.weights.data() + i * k;
        INFO("layer " << trace.layer[i] << " position " << trace.position[i]);
        double sum = 0;
        for (std::size_t j = 0; j < k; ++j) {
            INFO("choice " << j << ": expert " << ids[j] << " weight " << w[j]);
            REQUIRE(ids[j] < E);
            for (std::size_t jj = 0; jj < j; ++jj) REQUIRE(ids[jj] != ids[j]);
            REQUIRE(std::isfinite(w[j]));
            REQUIRE(w[j] > 0.0f);
            if (j > 0) {
                REQUIRE(w[j - 1] >= w[j]);  // best first
                // Equal probabilities: the lowest expert index wins (router.hpp).
                if (!moe.norm_topk_prob && w[j - 1] == w[j]) REQUIRE(ids[j - 1] < ids[j]);
            }
            sum += w[j];
        }
        INFO("sum of weights " << sum);
        if (moe.norm_topk_prob) {
            REQUIRE(std::abs(sum - 1.0) <= renorm);
        } else {
            REQUIRE(sum <= 1.0 + s + k * 0x1p-53);
            REQUIRE(sum >= static_cast<double>(k) / static_cast<double>(E) * (1.0 - s));
        }
    }
}

// An exact value (double, from the f32 weights) and two bounds on how far
// the f32 forward pass can be from it: element by element, |e_i| <= each[i],
// and as a vector, ||e||_2 <= norm. Each step below uses whichever is tighter:
// element bounds add up the worst case of every input error for every output,
// while ||W e|| <= ||W||_2 ||e|| knows that one error vector cannot line up
// with every row of W at once. (On the fixtures, element bounds alone bounded
// the router's probabilities to 2-4% at n_embd 64 and 94% at 256; with norms,
// 0.6-1% and 10%. Both are worst cases: the real errors are far smaller.)
// Double rounding (2^-53 relative) is far below every bound and is ignored.
struct Bounded {
    std::vector<double> value, each;
    double norm = 0;
};

double norm2(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s);
}

std::vector<double> row_f64(const WeightMatrix& w, std::size_t r) {
    std::vector<float> row(w.cols);
    ops::row_to_f32(w, r, row.data());
    return {row.begin(), row.end()};
}

// An upper bound on the spectral norm ||W||_2 = sqrt(lambda_max(A)), A the
// smaller Gram matrix (W W^T or W^T W). For positive semidefinite A of size d,
// lambda_max^p <= trace(A^p) <= d lambda_max^p, so trace(A^p)^(1/p) is above
// lambda_max by at most d^(1/p): with p = 2^5 and d <= 256, under 19% (9% on
// the norm). A is scaled by 1/trace(A) first so the powers stay near 1.
double spectral_norm_bound(const WeightMatrix& w) {
    std::vector<std::vector<double>> rows(w.rows);
    for (std::size_t r = 0; r < w.rows; ++r) rows[r] = row_f64(w, r);
    const bool by_rows = w.rows <= w.cols;
    const std::size_t d = by_rows ? w.rows : w.cols, n = by_rows ? w.cols : w.rows;
    auto at = [&](std::size_t i, std::size_t k) { return by_rows ? rows[i][k] : rows[k][i]; };
    std::vector<double> A(d * d, 0.0), B(d * d);
    double trace = 0;
    for (std::size_t i = 0; i < d; ++i)
        for (std::size_t j = 0; j < d; ++j) {
            for (std::size_t k = 0; k < n; ++k) A[i * d + j] += at(i, k) * at(j, k);
            if (i == j) trace += A[i * d + i];
        }
    if (trace == 0) return 0;
    for (double& x : A) x /= trace;
    constexpr int kSquarings = 5;
    for (int step = 0; step < kSquarings; ++step) {
        for (std::size_t i = 0; i < d; ++i)
            for (std::size_t j = 0; j < d; ++j) {
                double s = 0;
                for (std::size_t k = 0; k < d; ++k) s += A[i * d + k] * A[k * d + j];
                B[i * d + j] = s;
            }
        std::swap(A, B);
    }
    double trace_power = 0;
    for (std::size_t i = 0; i < d; ++i) trace_power += A[i * d + i];
    return std::sqrt(trace * std::pow(trace_power, 1.0 / (1 << kSquarings)));
}

Bounded exact_bounded(const float* data, std::size_t n) {
    return {std::vector<double>(data, data + n), std::vector<double>(n, 0.0), 0.0};
}

// y = W x: the backend computes fl(W x~) from an x~ within the bounds of x. By
// the product bound every backend meets (test_kernels.cpp), the rounding is
// |fl(W_r x~) - W_r x~| <= gamma(n + 1) sum |W_r| |x~|, and the input error
// moves W_r x by at most min(sum |W_r| each, ||W_r|| norm) (Cauchy-Schwarz);
// as a vector, by at most ||W||_2 norm.
Bounded product_bounded(const WeightMatrix& w, double w_spectral, const Bounded& x) {
    using namespace test;
    REQUIRE(w.cols == x.value.size());
    Bounded y{std::vector<double>(w.rows), std::vector<double>(w.rows), 0.0};
    std::vector<double> rounding(w.rows);
    const double g = gamma_n(static_cast<double>(w.cols) + 1);
    for (std::size_t r = 0; r < w.rows; ++r) {
        const auto row = row_f64(w, r);
        double v = 0, magnitude = 0, by_element = 0;
        for (std::size_t c = 0; c < w.cols; ++c) {
            v += row[c] * x.value[c];
            magnitude += std::abs(row[c] * x.value[c]);
            by_element += std::abs(row[c]) * x.each[c];
        }
        const double moved = std::min(by_element, norm2(row) * x.norm);
        y.value[r] = v;
        rounding[r] = g * (magnitude + moved);
        y.each[r] = rounding[r] + moved;
    }
    y.norm = std::min(norm2(y.each), w_spectral * x.norm + norm2(rounding));
    return y;
}

// a + b with one correctly rounded addition (the add kernel): the errors add,
// plus u of the result's magnitude.
Bounded sum_bounded(const Bounded& a, const Bounded& b) {
    Bounded y = a;
    for (std::size_t i = 0; i < a.value.size(); ++i) {
        y.value[i] += b.value[i];
        y.each[i] += b.each[i];
        y.each[i] += test::u * (std::abs(y.value[i]) + y.each[i]);
    }
    const double moved = a.norm + b.norm;
    y.norm = std::min(norm2(y.each), moved + test::u * (norm2(y.value) + moved));
    return y;
}

// rmsnorm(x~) with x~ within the bounds of x: out_i = g_i x_i / rho with
// rho = sqrt(mean x^2 + eps). The Jacobian is diag(g) / rho (I - x x^T / (n rho^2)),
// and the matrix in brackets has eigenvalues 1 and eps / rho^2, so along the
// segment from x to x~ (where rho >= rho_min):
//   element i moves by at most |g_i| (each_i / rho_min + X_i sum_j X_j each_j / (n rho_min^3)),
//     with X_j = |x_j| + each_j;
//   the vector by at most max |g| / rho_min * norm.
// rho_min: each |x_j| shrunk by each_j, or ||x|| by norm, whichever is larger.
// Then the kernel's own rounding, rmsnorm_relative_bound of |out_i| + moved_i.
Bounded rmsnorm_bounded(const Bounded& x, FloatSpan weight, float eps) {
    const std::size_t n = x.value.size();
    REQUIRE(weight.size == n);
    double sum_sq = 0, sum_sq_shrunk = 0, weighted_error = 0, g_max = 0;
    for (std::size_t j = 0; j < n; ++j) {
        sum_sq += x.value[j] * x.value[j];
        const double shrunk = std::max(std::abs(x.value[j]) - x.each[j], 0.0);
        sum_sq_shrunk += shrunk * shrunk;
        weighted_error += (std::abs(x.value[j]) + x.each[j]) * x.each[j];
        g_max = std::max(g_max, std::abs(double(weight[j])));
    }
    const double norm_shrunk = std::max(std::sqrt(sum_sq) - x.norm, 0.0);
    const double rho = std::sqrt(sum_sq / n + eps);
    const double rho_min = std::sqrt(std::max(sum_sq_shrunk, norm_shrunk * norm_shrunk) / n + eps);
    const double r = test::rmsnorm_relative_bound(n);
    Bounded y{std::vector<double>(n), std::vector<double>(n), 0.0};
    for (std::size_t i = 0; i < n; ++i) {
        y.value[i] = weight[i] * x.value[i] / rho;
        const double moved = std::abs(weight[i]) * (x.each[i] / rho_min + (std::abs(x.value[i]) + x.each[i]) *
                                                                             weighted_error / (n * rho_min * rho_min * rho_min));
        y.each[i] = moved + r * (std::abs(y.value[i]) + moved);
    }
    const double moved = g_max / rho_min * x.norm;
    y.norm = std::min(norm2(y.each), moved + r * (norm2(y.value) + moved));
    return y;
}

// Layer 0's attention and router weights, with their spectral norm bounds (computed once per model).
struct Layer0 {
    const LayerWeights& weights;
    double wv, wo, router;
    explicit Layer0(const Model& model)
        : weights(model.weights().layers[0]),
          wv(spectral_norm_bound(weights.attn.wv)),
          wo(spectral_norm_bound(weights.attn.wo)),
          router(spectral_norm_bound(weights.moe.router)) {}
};

// Layer 0's router for one token at position 0 of an empty cache, from the
// weights alone. There attention sees only its own key: the softmax over one
// score is 1 (within softmax_relative_bound(1)), and the head's output is
// fl(p v) (one more u), so the block is x1 = x0 + Wo [v_g(h)]_h with
// v = Wv rmsnorm(x0) + bv; the router then sees rmsnorm(x1).
// Returns the exact expert probabilities and P, the relative bound on how far
// the backend's probabilities can be from them.
template <class B>
std::pair<std::vector<double>, double> layer0_router(const Model& model, const Layer0& layer, std::int32_t token) {
    using namespace test;
    const ModelConfig& c = model.config();
    const LayerWeights& L = layer.weights;
    std::vector<float> embedding(c.n_embd);
    ops::row_to_f32(model.weights().token_embd, static_cast<std::size_t>(token), embedding.data());
    const Bounded x0 = exact_bounded(embedding.data(), c.n_embd);
    Bounded v = product_bounded(L.attn.wv, layer.wv, rmsnorm_bounded(x0, L.attn_norm, c.rms_eps));
    if (!L.attn.bv.empty()) v = sum_bounded(v, exact_bounded(L.attn.bv.data, L.attn.bv.size));
    // Each query head h reads KV head h / (n_head / n_head_kv), times p~ = 1 +- softmax_relative_bound(1).
    const double head_rel = compose(softmax_relative_bound<B>(1), u);
    const std::size_t group = c.n_head / c.n_head_kv, hd = c.head_dim;
    Bounded mixed{std::vector<double>(c.q_dim()), std::vector<double>(c.q_dim()), 0.0};
    for (std::size_t h = 0; h < c.n_head; ++h)
        for (std::size_t d = 0; d < hd; ++d) {
            const std::size_t src = (h / group) * hd + d;
            mixed.value[h * hd + d] = v.value[src];
            mixed.each[h * hd + d] = v.each[src] + head_rel * (std::abs(v.value[src]) + v.each[src]);
        }
    // Every KV head appears `group` times.
    const double repeat = std::sqrt(static_cast<double>(group));
    mixed.norm = std::min(norm2(mixed.each), repeat * (v.norm + head_rel * (norm2(v.value) + v.norm)));
    const Bounded x1 = sum_bounded(x0, product_bounded(L.attn.wo, layer.wo, mixed));
    const Bounded logits = product_bounded(L.moe.router, layer.router, rmsnorm_bounded(x1, L.ffn_norm, c.rms_eps));

    // Exact softmax. The backend computes softmax(l~) with l~ within e_l of l,
    // from rounded arguments fl(l~_i - max l~): each argument is l_i + eta_i up to a
    // common shift, |eta_i| <= H = max e_l + u (max_i (l_max - l_i) + 2 max e_l).
    // Softmax is shift-invariant and q_i / p_i = e^eta_i / sum_j p_j e^eta_j, so
    // |q - p| <= expm1(2H) p; the kernel adds softmax_relative_bound(n_expert).
    const std::size_t E = c.moe.n_expert;
    const double l_max = *std::max_element(logits.value.begin(), logits.value.end());
    double e_max = 0, spread = 0, total = 0;
    std::vector<double> p(E);
    for (std::size_t e = 0; e < E; ++e) {
        e_max = std::max(e_max, std::min(logits.each[e], logits.norm));
        spread = std::max(spread, l_max - logits.value[e]);
        total += p[e] = std::exp(logits.value[e] - l_max);
    }
    for (double& pe : p) pe /= total;
    const double H = e_max + u * (spread + 2 * e_max);
    return {p, compose(std::expm1(2 * H), softmax_relative_bound<B>(E))};
}

// One recorded decision (k expert ids and weights) of layer 0 for `token` at
// position 0 against layer0_router(). Returns true when the exact
// probabilities decide the top k beyond the bound (then the set must be
// exactly theirs); `bound` receives P.
template <class B>
bool check_layer0_decision(const Model& model, const Layer0& layer, std::int32_t token, const std::uint32_t* ids,
                           const float* w, double& bound) {
    using namespace test;
    const MoEConfig& moe = model.config().moe;
    const std::size_t E = moe.n_expert, k = moe.n_expert_used;
    const auto [p, P] = layer0_router<B>(model, layer, token);
    bound = P;
    INFO("token " << token << ": probabilities within " << P << " relative");

    // The trace lists p~ best first, and p~ is within P of p: every chosen
    // expert beats every later choice and every expert left out, up to that.
    std::vector<bool> chosen(E, false);
    for (std::size_t j = 0; j < k; ++j) {
        REQUIRE(ids[j] < E);
        chosen[ids[j]] = true;
    }
    for (std::size_t j = 0; j < k; ++j) {
        INFO("choice " << j << ": expert " << ids[j] << " p " << p[ids[j]]);
        for (std::size_t jj = j + 1; jj < k; ++jj) REQUIRE(p[ids[j]] * (1 + P) >= p[ids[jj]] * (1 - P));
        for (std::size_t e = 0; e < E; ++e)
            if (!chosen[e]) REQUIRE(p[ids[j]] * (1 + P) >= p[e] * (1 - P));
    }
    // Where the exact k-th and (k+1)-th probabilities are further apart than
    // that, the chosen set is the exact top k.
    std::vector<std::size_t> order(E);
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::stable_sort(order.begin(), order.end(), [&p = p](std::size_t a, std::size_t b) { return p[a] > p[b]; });
    const bool decided = k == E || p[order[k - 1]] * (1 - P) > p[order[k]] * (1 + P);
    if (decided)
        for (std::size_t j = 0; j < k; ++j) REQUIRE(chosen[order[j]]);

    // The weights: p itself, or renormalised over the chosen set. With
    // renormalisation, numerator and sum each within P, the f32 sum of k
    // terms gamma(k - 1), the division u. (A bound of 1 or more on the sum
    // says nothing, and through_division needs less.)
    double chosen_sum = 0;
    for (std::size_t j = 0; j < k; ++j) chosen_sum += p[ids[j]];
    const double sum_rel = compose(P, gamma_n(k - 1.0));
    const double R = sum_rel < 1 ? compose(compose(P, through_division(sum_rel)), u) : INFINITY;
    for (std::size_t j = 0; j < k; ++j) {
        const double want = moe.norm_topk_prob ? p[ids[j]] / chosen_sum : p[ids[j]];
        INFO("choice " << j << ": expert " << ids[j] << " weight " << w[j] << ", recomputed " << want);
        REQUIRE(std::abs(w[j] - want) <= (moe.norm_topk_prob ? R : P) * want);
    }
    return decided;
}

}  // namespace

TEMPLATE_TEST_CASE("routing trace: one entry per (layer, position), k distinct experts, weights as routed",
                   "[forward][fixtures][routing]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t checked = 0;
    for (const MoESource& m : moe_sources()) {
        const Source& src = m.source;
        const ModelConfig& c = m.model.config();
        const auto tokens = token_list(src.entry["cases"][0]["tokens"]);
        const std::size_t n = tokens.size(), V = c.n_vocab, half = n / 2;
        INFO(src.model << " (" << src.format << ", " << TestType::name << ")");
        std::vector<float> logits(n * V);

        // Prefill: layer by layer, each layer's positions in order.
        Transformer<TestType> batch(m.model, pool);
        RoutingTrace prefill;
        batch.record_routing(&prefill);
        batch.forward(tokens, logits.data());
        std::vector<Entry> expected;
        append_expected(expected, c.n_layer, 0, n);
        REQUIRE(entries_of(prefill) == expected);
        check_decisions<TestType>(prefill, c.moe);
        // Stopping: later calls record nothing.
        batch.record_routing(nullptr);
        batch.reset();
        batch.forward(tokens, logits.data());
        REQUIRE(prefill.layer.size() == c.n_layer * n);

        // Half the prompt at once, then one token at a time: positions continue from the cache.
        Transformer<TestType> stepwise(m.model, pool);
        RoutingTrace steps;
        stepwise.record_routing(&steps);
        stepwise.forward(std::span(tokens).first(half), logits.data());
        expected.clear();
        append_expected(expected, c.n_layer, 0, half);
        for (std::size_t t = half; t < n; ++t) {
            stepwise.forward(std::span(&tokens[t], 1), logits.data());
            append_expected(expected, c.n_layer, t, 1);
        }
        REQUIRE(entries_of(steps) == expected);
        check_decisions<TestType>(steps, c.moe);
        ++checked;
    }
    WARN("checked the routing traces of " << checked << " MoE sources with backend " << TestType::name);
    REQUIRE(checked > 0);
}

TEMPLATE_TEST_CASE("routing trace of layer 0 equals the router recomputed from the weights",
                   "[forward][fixtures][routing]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    ThreadPool pool(2);
    std::size_t checked_sources = 0, decided_total = 0;
    for (const MoESource& m : moe_sources()) {
        const Source& src = m.source;
        const ModelConfig& c = m.model.config();
        // The recomputation needs layer 0 to be plain softmax attention (not Gated DeltaNet, no output gate).
        if (c.layer_kinds[0] != LayerKind::attention || c.attn_output_gate) continue;
        INFO(src.model << " (" << src.format << ", " << TestType::name << ")");
        const std::size_t k = c.moe.n_expert_used;
        Transformer<TestType> transformer(m.model, pool);
        const Layer0 layer0(m.model);
        std::size_t decided = 0;
        std::vector<double> bounds;  // P of each decision checked

        // Every token the manifest's prompts use, each alone at position 0.
        std::set<std::int32_t> token_ids;
        for (const auto& cs : src.entry["cases"])
            for (std::int32_t t : token_list(cs["tokens"])) token_ids.insert(t);
        std::vector<float> logits(c.n_vocab);
        for (const std::int32_t token : token_ids) {
            RoutingTrace trace;
            transformer.reset();
            transformer.record_routing(&trace);
            transformer.forward(std::span(&token, 1), logits.data());
            REQUIRE(trace.layer.size() == c.n_layer);
            REQUIRE((trace.layer[0] == 0 && trace.position[0] == 0));
            decided += check_layer0_decision<TestType>(m.model, layer0, token, trace.experts.data(), trace.weights.data(),
                                                       bounds.emplace_back());
        }
        // The first position of each whole prompt: entry 0 of a batch is its first token's.
        for (const auto& cs : src.entry["cases"]) {
            const auto tokens = token_list(cs["tokens"]);
            RoutingTrace trace;
            transformer.reset();
            transformer.record_routing(&trace);
            std::vector<float> all(tokens.size() * c.n_vocab);
            transformer.forward(tokens, all.data());
            REQUIRE((trace.layer[0] == 0 && trace.position[0] == 0));
            decided += check_layer0_decision<TestType>(m.model, layer0, tokens[0], trace.experts.data(), trace.weights.data(),
                                                       bounds.emplace_back());
        }
        std::sort(bounds.begin(), bounds.end());
        WARN(src.model << " (" << src.format << ", " << TestType::name << "): layer 0 recomputed for "
                       << bounds.size() << " decisions, " << decided << " with the top " << k << " decided beyond the bound"
                       << (c.moe.norm_topk_prob ? " (renormalised)" : " (softmax weights)")
                       << "; bound on the probabilities: median " << bounds[bounds.size() / 2] << ", max "
                       << bounds.back());
        decided_total += decided;
        ++checked_sources;
    }
    REQUIRE(checked_sources > 0);
    // Not vacuous: the bound decides the experts for some tokens.
    REQUIRE(decided_total > 0);
}
