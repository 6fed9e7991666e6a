// SPDX-License-Identifier: MIT
// The one place the CLI compiles Transformer<B> (cli/transformers.hpp).
#include "cli/transformers.hpp"

template class moelab::Transformer<moelab::backend::scalar>;
#if MOELAB_HAVE_HIGHWAY
template class moelab::Transformer<moelab::backend::highway>;
#endif
#if MOELAB_HAVE_XSIMD
template class moelab::Transformer<moelab::backend::xsimd>;
#endif
