// SPDX-License-Identifier: MIT
// The decode tuning (model/decode_tuning.hpp): its schedule and its choice,
// driven by made-up step times; and, on the fixture models, that the way
// matvec reads rows changes no bit of the logits: a Transformer fixed to one
// stream, one fixed to passes of 8 rows, and one that tunes (switching
// between the two in its first decode steps) decode the same bits.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "moelab/model/decode_tuning.hpp"
#include "support/backends.hpp"
#include "support/fixtures.hpp"
#include "support/transformers.hpp"

using namespace moelab;
using kernels::MatvecReads;

namespace {

// A tag with the setting, so that the tuner's logic is tested in every build.
struct TunableTag {
    static constexpr const char* name = "tunable";
    MatvecReads matvec_reads = MatvecReads::stream_when_short;
};

// Runs the whole schedule: seconds_for(reads) is what each timed step "took".
template <class F>
DecodeTuner<TunableTag> run_schedule(F&& seconds_for, std::vector<MatvecReads>* tried = nullptr) {
    DecodeTuner<TunableTag> tuner;
    for (int step = 0; !tuner.decided(); ++step) {
        REQUIRE(step < 7);
        const MatvecReads reads = tuner.next().matvec_reads;
        if (tried) tried->push_back(reads);
        tuner.record(step == 0 ? 1000.0 : seconds_for(reads));  // step 0 is untimed, whatever it took
    }
    return tuner;
}

}  // namespace

TEST_CASE("decode tuning: one untimed step, then A B B A A B, and the lower median wins", "[tuning]") {
    constexpr MatvecReads S = MatvecReads::stream_when_short, P = MatvecReads::row_passes;
    std::vector<MatvecReads> tried;
    const auto passes_faster = run_schedule([](MatvecReads r) { return r == P ? 0.030 : 0.040; }, &tried);
    CHECK(tried == std::vector<MatvecReads>{S, S, P, P, S, S, P});
    CHECK(passes_faster.chosen().matvec_reads == P);
    CHECK(passes_faster.next().matvec_reads == P);  // every later step
    CHECK(passes_faster.median_seconds(0) == 0.040);
    CHECK(passes_faster.median_seconds(1) == 0.030);
    CHECK(passes_faster.describe() == "passes (tuned: 30.00 ms per decode step, stream 40.00 ms)");

    const auto stream_faster = run_schedule([](MatvecReads r) { return r == S ? 0.030 : 0.040; });
    CHECK(stream_faster.chosen().matvec_reads == S);
    CHECK(stream_faster.describe() == "stream (tuned: 30.00 ms per decode step, passes 40.00 ms)");

    // A tie keeps the default; one slow outlier per candidate does not move its median.
    CHECK(run_schedule([](MatvecReads) { return 0.035; }).chosen().matvec_reads == S);
    int n = 0;
    const auto outlier = run_schedule([&](MatvecReads r) { return ++n == 1 ? 9.0 : (r == S ? 0.030 : 0.031); });
    CHECK(outlier.chosen().matvec_reads == S);
}

TEST_CASE("decode tuning: a fixed tag is never changed, a tag without the setting needs none", "[tuning]") {
    TunableTag passes;
    passes.matvec_reads = MatvecReads::row_passes;
    auto fixed = DecodeTuner<TunableTag>::fixed(passes);
    CHECK(fixed.decided());
    CHECK_FALSE(fixed.tunes());
    for (int i = 0; i < 10; ++i) {
        CHECK(fixed.next().matvec_reads == MatvecReads::row_passes);
        fixed.record(1.0 + i);
    }
    fixed.restart();  // stays fixed
    CHECK(fixed.chosen().matvec_reads == MatvecReads::row_passes);
    CHECK(fixed.describe() == "passes (fixed)");

    DecodeTuner<backend::scalar> scalar;
    CHECK(scalar.decided());
    CHECK_FALSE(scalar.tunes());
    CHECK(scalar.describe() == "not applicable (scalar)");

    // restart() on a tuned one starts the schedule again from the default.
    DecodeTuner<TunableTag> tuner = run_schedule([](MatvecReads r) { return r == MatvecReads::row_passes ? 1.0 : 2.0; });
    REQUIRE(tuner.chosen().matvec_reads == MatvecReads::row_passes);
    tuner.restart();
    CHECK_FALSE(tuner.decided());
    CHECK(tuner.chosen().matvec_reads == MatvecReads::stream_when_short);
    CHECK(tuner.describe() == "stream (default; not tuned yet)");
}

TEMPLATE_TEST_CASE("matvec's reads change no bit: fixed stream, fixed passes and tuning decode alike",
                   "[forward][tuning][fixtures]", MOELAB_TEST_BACKENDS) {
    MOELAB_REQUIRE_FIXTURES();
    if constexpr (!kernels::HasMatvecReads<TestType>) {
        SUCCEED(TestType::name << " has no run-time setting to compare");
    } else {
        const nlohmann::json manifest = test::manifest();
        std::size_t models = 0, moe_models = 0;
        for (const auto& m : manifest["models"]) {
            if (m["weights"] != "f32" || !m.contains("gguf")) continue;
            const Model model = Model::load(test::fixtures_dir() / m["gguf"].get<std::string>());
            const auto prompt = m["cases"][0]["tokens"].get<std::vector<std::int32_t>>();
            const std::size_t V = model.config().n_vocab, n_steps = 9;  // more than the tuning's 7 steps
            ThreadPool pool(2);
            // Logits of n_steps decode steps, one token at a time from the start.
            auto decode = [&](Transformer<TestType>& transformer) {
                std::vector<float> logits(n_steps * V);
                for (std::size_t i = 0; i < n_steps; ++i)
                    transformer.forward(std::span(&prompt[i % prompt.size()], 1), logits.data() + i * V);
                return logits;
            };
            TestType stream, passes;
            stream.matvec_reads = MatvecReads::stream_when_short;
            passes.matvec_reads = MatvecReads::row_passes;
            Transformer<TestType> fixed_stream(model, pool), fixed_passes(model, pool), tuning(model, pool);
            fixed_stream.fix_backend(stream);
            fixed_passes.fix_backend(passes);
            const auto reference = decode(fixed_stream);
            INFO(m["name"].get<std::string>() << " with " << TestType::name);
            CHECK(std::memcmp(decode(fixed_passes).data(), reference.data(), reference.size() * sizeof(float)) == 0);
            CHECK(std::memcmp(decode(tuning).data(), reference.data(), reference.size() * sizeof(float)) == 0);
            CHECK(tuning.decode_tuning().decided());
            CHECK(fixed_passes.decode_tuning().chosen().matvec_reads == MatvecReads::row_passes);
            ++models;
            moe_models += model.config().is_moe();
        }
        REQUIRE(moe_models > 0);
        REQUIRE(models > moe_models);
    }
}
