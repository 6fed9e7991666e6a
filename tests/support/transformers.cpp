// SPDX-License-Identifier: MIT
// The one place the tests compile Transformer<B> (support/transformers.hpp).
#include "support/transformers.hpp"

template class moelab::Transformer<moelab::backend::scalar>;
#if MOELAB_HAVE_HIGHWAY
template class moelab::Transformer<moelab::backend::highway>;
#endif
#if MOELAB_HAVE_XSIMD
template class moelab::Transformer<moelab::backend::xsimd>;
#endif
