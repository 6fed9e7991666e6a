# SPDX-License-Identifier: MIT
cmake_minimum_required(VERSION 3.21)
# Preprocesses the umbrella header with -dM and fails on any MOELAB_* macro
# that is not part of the public interface.
set(public MOELAB_VERSION_MAJOR MOELAB_VERSION_MINOR MOELAB_VERSION_PATCH MOELAB_VERSION_STRING)
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/macro_check.cpp" "#include \"moelab/moelab.hpp\"\n")
execute_process(COMMAND ${CXX} -std=c++20 -dM -E -I${SOURCE_DIR}/include "${CMAKE_CURRENT_BINARY_DIR}/macro_check.cpp"
                OUTPUT_VARIABLE defines RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "preprocessing moelab/moelab.hpp failed")
endif()
string(REGEX MATCHALL "#define MOELAB_[A-Za-z0-9_]*" found "${defines}")
set(leaked "")
foreach(d IN LISTS found)
  string(REPLACE "#define " "" name "${d}")
  if(NOT name IN_LIST public)
    list(APPEND leaked ${name})
  endif()
endforeach()
list(LENGTH found n)
if(leaked)
  message(FATAL_ERROR "internal macros leak out of moelab/moelab.hpp: ${leaked}")
endif()
message(STATUS "macro hygiene: ${n} MOELAB_ macros, all public")
