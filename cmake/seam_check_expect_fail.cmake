# seam_check_expect_fail.cmake — proves the seam check can fail (DESIGN "reactor/sys").
#
#   cmake -DSEAM_HEADER=... -DSEAM_OBJECTS=<planted objects> -DSEAM_EXPECT=<symbol>
#         [-DSEAM_NM=...] -P seam_check_expect_fail.cmake
#
# Runs seam_check.cmake on objects that bypass the seam and succeeds only if that run fails
# *as a finding* — its "denied symbol(s)" report — and names SEAM_EXPECT. A check that passes,
# or fails for another reason (a crash, a missing object, no list in sys.h), fails this test.
cmake_minimum_required(VERSION 3.25)

foreach(var SEAM_HEADER SEAM_OBJECTS SEAM_EXPECT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "seam_check_expect_fail: -D${var}=... is required")
  endif()
endforeach()
set(nm_arg "")
if(SEAM_NM)
  set(nm_arg "-DSEAM_NM=${SEAM_NM}")
endif()

execute_process(
  COMMAND "${CMAKE_COMMAND}" "-DSEAM_HEADER=${SEAM_HEADER}" "-DSEAM_OBJECTS=${SEAM_OBJECTS}"
          ${nm_arg} -P "${CMAKE_CURRENT_LIST_DIR}/seam_check.cmake"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)

if(rc EQUAL 0)
  message(FATAL_ERROR "seam check PASSED objects that call ${SEAM_EXPECT} directly:\n${out}")
endif()
if(NOT out MATCHES "seam check: [0-9]+ denied symbol\\(s\\) outside the seam:")
  message(FATAL_ERROR "seam check failed, but not with a finding:\n${out}")
endif()
if(NOT out MATCHES "\\.o[a-z]*: ${SEAM_EXPECT}\n")
  message(FATAL_ERROR "seam check failed without naming '${SEAM_EXPECT}':\n${out}")
endif()
message(STATUS "seam check caught the planted '${SEAM_EXPECT}':\n${out}")
