// SPDX-License-Identifier: MIT
// Test support: Transformer<B> for every backend of this build is compiled
// once, in support/transformers.cpp, instead of in every test file that runs a
// model. Its forward() pulls in every kernel of the backend, and compiling it
// was most of the tests' build time (about 50 s per file under the
// sanitizers). Include this header instead of moelab/model/transformer.hpp.
#pragma once

#include "moelab/model/transformer.hpp"
#include "support/backends.hpp"

extern template class moelab::Transformer<moelab::backend::scalar>;
#if MOELAB_HAVE_HIGHWAY
extern template class moelab::Transformer<moelab::backend::highway>;
#endif
#if MOELAB_HAVE_XSIMD
extern template class moelab::Transformer<moelab::backend::xsimd>;
#endif
