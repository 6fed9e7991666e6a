// SPDX-License-Identifier: MIT
// moelab/moelab.hpp — the umbrella header: all of moelab, in reading order.
//
// Depends on: the standard library and nlohmann/json (for the loaders). The
// Highway and xsimd backends are included only where their CMake targets
// (moelab::highway, moelab::xsimd) define MOELAB_HAVE_HIGHWAY / MOELAB_HAVE_XSIMD.
//
// Public macros: MOELAB_VERSION_{MAJOR,MINOR,PATCH,STRING}. No other MOELAB_
// macro survives this header (checked by tests/hygiene/check_macros.cmake).
#pragma once

#include "moelab/config.hpp"
#include "moelab/error.hpp"
#include "moelab/dtype.hpp"
#include "moelab/tensor.hpp"
#include "moelab/thread_pool.hpp"

// Quantized GGUF weight formats: block layouts, exact dequantisation, quantizers.
#include "moelab/quant/quant.hpp"

// Kernels: the contract, the reference, and the SIMD backends this build has.
#include "moelab/kernels/backend.hpp"
#include "moelab/kernels/scalar.hpp"
#if defined(MOELAB_HAVE_HIGHWAY) && MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
#endif
#if defined(MOELAB_HAVE_XSIMD) && MOELAB_HAVE_XSIMD
#include "moelab/kernels/xsimd.hpp"
#endif
#include "moelab/ops/linear.hpp"
#include "moelab/ops/embedding.hpp"

// Files: memory-mapped GGUF and safetensors.
#include "moelab/io/mapped_file.hpp"
#include "moelab/io/tensor_entry.hpp"
#include "moelab/io/gguf.hpp"
#include "moelab/io/safetensors.hpp"

// The model: description, layers, forward pass.
#include "moelab/model/config.hpp"
#include "moelab/model/config_gguf.hpp"
#include "moelab/model/config_hf.hpp"
#include "moelab/model/weights.hpp"
#include "moelab/model/weight_map.hpp"
#include "moelab/model/model.hpp"
#include "moelab/model/cost.hpp"
#include "moelab/model/cache.hpp"
#include "moelab/layers/context.hpp"
#include "moelab/layers/rope.hpp"
#include "moelab/layers/attention.hpp"
#include "moelab/layers/deltanet.hpp"
#include "moelab/layers/ffn_dense.hpp"
#include "moelab/layers/router.hpp"
#include "moelab/layers/ffn_moe.hpp"
#include "moelab/model/transformer.hpp"
