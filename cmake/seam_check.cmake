# seam_check.cmake — the CI symbol check of the syscall seam (DESIGN "reactor/sys", STYLE 21).
#
#   cmake -DSEAM_HEADER=<repo>/reactor/sys/sys.h
#         -DSEAM_OBJECTS=<a.o|b.o|...>         ('|' or ';' separated)
#         [-DSEAM_NM=<path of nm>]
#         -P seam_check.cmake
#
# Run in the fault build (release inlines the raw calls into the objects by design). It builds
# the deny list from the seam's own X-macro list — every `X(name, ...)` entry of
# FAULTLOOP_SYS_CALLS in sys.h ("one list drives everything") — plus DESIGN's wider names that
# the seam does not offer (send, recv, poll, dup, pipe, ...), and for every name its glibc
# aliases: the _FORTIFY_SOURCE variants `__name_chk` and `__name_2` and the LFS `name64`.
# Then it runs `nm -u` on each object and fails, listing `object: symbol`, for every denied
# undefined symbol. Mangled C++ names (faultloop::sys::readv) never match a C name.
#
# Output on success:  "seam check: clean — N object(s), M denied names"
# Output on failure:  "seam check: K denied symbol(s) outside the seam:" then one line each.
# Any other failure (no list in sys.h, missing object, nm failing) stops with a different
# message, so a caller can tell a finding from a broken check.
cmake_minimum_required(VERSION 3.25)

foreach(var SEAM_HEADER SEAM_OBJECTS)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "seam_check: -D${var}=... is required")
  endif()
endforeach()
if(NOT SEAM_NM)
  find_program(SEAM_NM nm)
  if(NOT SEAM_NM)
    message(FATAL_ERROR "seam_check: nm not found (pass -DSEAM_NM=...)")
  endif()
endif()

# ---- the deny list -----------------------------------------------------------------------
if(NOT EXISTS "${SEAM_HEADER}")
  message(FATAL_ERROR "seam_check: no seam header at ${SEAM_HEADER}")
endif()
file(READ "${SEAM_HEADER}" header)
# The macro runs from its #define to the first line that does not end in a backslash.
string(FIND "${header}" "#define FAULTLOOP_SYS_CALLS(X)" start)
if(start LESS 0)
  message(FATAL_ERROR "seam_check: no '#define FAULTLOOP_SYS_CALLS(X)' in ${SEAM_HEADER}")
endif()
string(SUBSTRING "${header}" ${start} -1 header)
string(REGEX MATCH "([^\n]*\\\\[ \t]*\n)*[^\n]*" macro "${header}")
string(REGEX MATCHALL "X\\([ \t]*[A-Za-z_][A-Za-z0-9_]*[ \t]*," entries "${macro}")
set(seam_calls "")
foreach(entry IN LISTS entries)
  string(REGEX REPLACE "X\\([ \t]*([A-Za-z0-9_]+)[ \t]*," "\\1" name "${entry}")
  list(APPEND seam_calls ${name})
endforeach()
list(LENGTH seam_calls seam_count)
if(seam_count EQUAL 0)
  message(FATAL_ERROR "seam_check: found no X(name, ...) entries in FAULTLOOP_SYS_CALLS")
endif()

# DESIGN "reactor/sys": a deny list wider than the seam.
set(wider_calls
  send recv sendto recvfrom sendmmsg recvmmsg accept
  epoll_pwait epoll_pwait2 poll ppoll select pselect
  eventfd_read eventfd_write dup dup2 dup3 pipe pipe2)

set(denied "")
foreach(name IN LISTS seam_calls wider_calls)
  list(APPEND denied ${name} __${name}_chk __${name}_2 ${name}64)
endforeach()
list(REMOVE_DUPLICATES denied)
list(LENGTH denied denied_count)

# ---- the objects ---------------------------------------------------------------------------
string(REPLACE "|" ";" objects "${SEAM_OBJECTS}")
list(FILTER objects EXCLUDE REGEX "^[ \t]*$")
list(LENGTH objects object_count)
if(object_count EQUAL 0)
  message(FATAL_ERROR "seam_check: the object list is empty")
endif()

set(findings "")
set(finding_count 0)
foreach(object IN LISTS objects)
  if(NOT EXISTS "${object}")
    message(FATAL_ERROR "seam_check: missing object ${object} (build first)")
  endif()
  # -P: POSIX format, "name type [value size]" — the name is the first field.
  execute_process(COMMAND "${SEAM_NM}" -u -P "${object}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "seam_check: ${SEAM_NM} -u failed on ${object}: ${err}")
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  foreach(line IN LISTS lines)
    if(line MATCHES "^([^ \t@]+)(@[^ \t]*)?[ \t]")
      set(symbol "${CMAKE_MATCH_1}")
      if(symbol IN_LIST denied)
        string(APPEND findings "  ${object}: ${symbol}\n")
        math(EXPR finding_count "${finding_count} + 1")
      endif()
    endif()
  endforeach()
endforeach()

if(finding_count GREATER 0)
  message(FATAL_ERROR
    "seam check: ${finding_count} denied symbol(s) outside the seam:\n${findings}"
    "Call the kernel through faultloop::sys (reactor/sys/sys.h); add the call to "
    "FAULTLOOP_SYS_CALLS if the seam lacks it.")
endif()
message(STATUS "seam check: clean — ${object_count} object(s), ${denied_count} denied names "
               "(${seam_count} from FAULTLOOP_SYS_CALLS)")
