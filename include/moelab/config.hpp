// SPDX-License-Identifier: MIT
// moelab/config.hpp — version macros.
//
// Depends on: nothing. CMake parses the three numbers below (keep the format);
// tests/hygiene checks that MOELAB_VERSION_STRING agrees with them.
#pragma once

#define MOELAB_VERSION_MAJOR 0
#define MOELAB_VERSION_MINOR 1
#define MOELAB_VERSION_PATCH 0
#define MOELAB_VERSION_STRING "0.1.0"
