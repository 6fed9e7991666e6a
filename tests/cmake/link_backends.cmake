# SPDX-License-Identifier: MIT
# Both consumers: also link the SIMD backend targets. EXPECT_HIGHWAY and
# EXPECT_XSIMD say whether the moelab build under test provides them; a target
# it provides but the consumer cannot see (dropped from the export, or from the
# package config's find_dependency) fails here, not silently.
foreach(_backend highway xsimd)
  string(TOUPPER ${_backend} _upper)
  if(TARGET moelab::${_backend})
    target_link_libraries(consumer PRIVATE moelab::${_backend})
    target_compile_definitions(consumer PRIVATE MOELAB_CONSUMER_LINKED_${_upper}=1)
    message(STATUS "consumer links moelab::${_backend}")
  elseif(EXPECT_${_upper})
    message(FATAL_ERROR "this moelab build provides moelab::${_backend}, but the consumer does not see it")
  endif()
endforeach()
