// SPDX-License-Identifier: MIT
// The benchmarks' backend when a suite times one: the best this build has
// (Highway, else xsimd, else scalar), as `Backend`.
#pragma once

#include "moelab/kernels/scalar.hpp"
#if MOELAB_HAVE_HIGHWAY
#include "moelab/kernels/highway.hpp"
using Backend = moelab::backend::highway;
#elif MOELAB_HAVE_XSIMD
#include "moelab/kernels/xsimd.hpp"
using Backend = moelab::backend::xsimd;
#else
using Backend = moelab::backend::scalar;
#endif
