// SPDX-License-Identifier: MIT
// Transformer<B> for every backend of this build is compiled once, in
// cli/transformers.cpp, not in each command that runs a model (its forward()
// pulls in every kernel of the backend: most of the CLI's compile time).
// Include this header instead of moelab/model/transformer.hpp.
#pragma once

#include "cli/cli.hpp"  // the backends of this build
#include "moelab/model/transformer.hpp"

extern template class moelab::Transformer<moelab::backend::scalar>;
#if MOELAB_HAVE_HIGHWAY
extern template class moelab::Transformer<moelab::backend::highway>;
#endif
#if MOELAB_HAVE_XSIMD
extern template class moelab::Transformer<moelab::backend::xsimd>;
#endif
