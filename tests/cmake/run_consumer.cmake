# SPDX-License-Identifier: MIT
cmake_minimum_required(VERSION 3.21)
# Builds and runs a tiny consumer project against moelab.
#   MODE=add_subdirectory: the consumer adds SOURCE_DIR as a subdirectory.
#   MODE=find_package:     moelab is installed from BINARY_DIR into WORK_DIR/prefix first.
# The consumer links moelab::moelab and every backend target the build provides.
file(REMOVE_RECURSE "${WORK_DIR}")
# EXPECT_HIGHWAY / EXPECT_XSIMD: whether the build under test provides those backend targets.
set(_args -DMOELAB_SOURCE_DIR=${SOURCE_DIR} -DEXPECT_HIGHWAY=${EXPECT_HIGHWAY} -DEXPECT_XSIMD=${EXPECT_XSIMD})
if(MODE STREQUAL "find_package")
  execute_process(COMMAND ${CMAKE_COMMAND} --install "${BINARY_DIR}" --prefix "${WORK_DIR}/prefix"
                  RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install failed (${rc})")
  endif()
  list(APPEND _args -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
endif()
foreach(step configure build run)
  if(step STREQUAL "configure")
    set(cmd ${CMAKE_COMMAND} -S "${SOURCE_DIR}/tests/cmake/${MODE}" -B "${WORK_DIR}/build" ${_args})
  elseif(step STREQUAL "build")
    set(cmd ${CMAKE_COMMAND} --build "${WORK_DIR}/build")
  else()
    set(cmd "${WORK_DIR}/build/consumer")
  endif()
  execute_process(COMMAND ${cmd} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${MODE} consumer: ${step} failed (${rc})\n${out}\n${err}")
  endif()
  if(step STREQUAL "run")
    message(STATUS "${out}")
  endif()
endforeach()
