# SPDX-License-Identifier: MIT
# cmake -DASM=<prefetch_probe.cpp compiled with -S> -DPROBES="probe_a;probe_b" -P check_prefetch.cmake
# Fails unless every named probe function exists in the assembly, and every
# probe_* function there (named or compiled for this target only, such as the
# bf16 mode's) reaches a prefetch instruction (x86 prefetcht0/..., Arm prfm):
# in its own body or in a function of the same file it calls or jumps to (a
# kernel's row loops may be a function of their own, never inlined). A probe
# named probe_*_matmul_* must reach prefetcht1 in particular: prefill's sweeps
# ask for their next chunk into L2 that way, and the same sweeps also run
# decode-style 1-token tiles, whose prefetcht0 would hide a lost one.
cmake_policy(SET CMP0057 NEW)  # if(... IN_LIST ...)
if(NOT EXISTS "${ASM}")
  message(FATAL_ERROR "check_prefetch: no assembly at ${ASM}")
endif()
file(STRINGS "${ASM}" _lines)

# Per function (keyed by the MD5 of its symbol, which may hold characters a
# variable name should not): whether it prefetches, and what it calls.
set(_current "")
set(_defined "")
foreach(_line IN LISTS _lines)
  if(_line MATCHES "^([A-Za-z_][A-Za-z0-9_.$]*):")
    set(_current "${CMAKE_MATCH_1}")
    string(MD5 _key "${_current}")
    list(APPEND _defined "${_current}")
  elseif(_line MATCHES "^[ \t]*\\.(cfi_endproc|size)")
    set(_current "")
  elseif(_current AND _line MATCHES "^[ \t]*(prefetch[a-z0-9]*|prfm)[ \t]")
    set(_prefetches_${_key} TRUE)
    if(CMAKE_MATCH_1 STREQUAL "prefetcht1")
      set(_prefetches_l2_${_key} TRUE)
    endif()
  elseif(_current AND _line MATCHES "^[ \t]*(call|jmp|bl|b)[a-z]*[ \t]+\\*?([A-Za-z_][A-Za-z0-9_.$]*)")
    list(APPEND _calls_${_key} "${CMAKE_MATCH_2}")
  endif()
endforeach()

# Whether `fn` or anything it reaches in this file prefetches (`kind` "" for
# any prefetch, "l2_" for prefetcht1).
function(reaches_prefetch fn kind out)
  set(_queue "${fn}")
  set(_visited "")
  while(_queue)
    list(POP_FRONT _queue _f)
    if(_f IN_LIST _visited OR NOT _f IN_LIST _defined)
      continue()
    endif()
    list(APPEND _visited "${_f}")
    string(MD5 _k "${_f}")
    if(_prefetches_${kind}${_k})
      set(${out} TRUE PARENT_SCOPE)
      return()
    endif()
    list(APPEND _queue ${_calls_${_k}})
  endwhile()
  set(${out} FALSE PARENT_SCOPE)
endfunction()

set(_probes_found "")
foreach(_f IN LISTS _defined)
  if(_f MATCHES "^probe_[A-Za-z0-9_]*$")  # not the compiler's pieces of one (probe_x.cold)
    list(APPEND _probes_found "${_f}")
  endif()
endforeach()
set(_all ${PROBES} ${_probes_found})
list(REMOVE_DUPLICATES _all)
set(_failed "")
foreach(_probe IN LISTS _all)
  if(NOT _probe IN_LIST _defined)
    list(APPEND _failed "${_probe} (not in the assembly)")
    continue()
  endif()
  if(_probe MATCHES "_matmul_")
    reaches_prefetch("${_probe}" "l2_" _ok)
    set(_what "prefetcht1")
  else()
    reaches_prefetch("${_probe}" "" _ok)
    set(_what "prefetch instruction")
  endif()
  if(_ok)
    message(STATUS "${_probe}: reaches a ${_what}")
  else()
    list(APPEND _failed "${_probe} (no ${_what})")
  endif()
endforeach()
if(_failed)
  string(REPLACE ";" ", " _failed "${_failed}")
  message(FATAL_ERROR "kernels without their software prefetch: ${_failed} (${ASM})")
endif()
