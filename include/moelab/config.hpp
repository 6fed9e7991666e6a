// SPDX-License-Identifier: MIT
// moelab/config.hpp — version and feature macros.
//
// Depends on: nothing. CMake parses the version numbers below (keep the format).
#pragma once

#define MOELAB_VERSION_MAJOR 0
#define MOELAB_VERSION_MINOR 1
#define MOELAB_VERSION_PATCH 0

#define MOELAB_STRINGIFY_DETAIL(x) #x
#define MOELAB_STRINGIFY(x) MOELAB_STRINGIFY_DETAIL(x)
#define MOELAB_VERSION_STRING                                                 \
    MOELAB_STRINGIFY(MOELAB_VERSION_MAJOR)                                    \
    "." MOELAB_STRINGIFY(MOELAB_VERSION_MINOR) "." MOELAB_STRINGIFY(MOELAB_VERSION_PATCH)
