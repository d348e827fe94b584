# ctest install.consumer: proves the installed package works for an out-of-tree project.
#
#   cmake -DBUILD_DIR=<this build> -DCONSUMER_DIR=<harness/tests/consumer> -DWORK_DIR=<scratch>
#         -DCXX_COMPILER=<path> -DGENERATOR=<name> [-DMAKE_PROGRAM=<path>] [-DBUILD_TYPE=<type>]
#         [-DEXPECT_FAULTS=ON|OFF] [-DSANITIZE=<a,b>] -P consumer_test.cmake
#
# Steps: install BUILD_DIR into WORK_DIR/prefix (emptied first, so a missing install rule is not
# hidden by an earlier run), configure the consumer against that prefix only, build it, run it.
# Any failing step stops the test with that step's output.

foreach(var BUILD_DIR CONSUMER_DIR WORK_DIR CXX_COMPILER GENERATOR)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "consumer_test.cmake: -D${var}=... is required")
  endif()
endforeach()

set(prefix ${WORK_DIR}/prefix)
set(consumer_build ${WORK_DIR}/build)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

# run_step(<name> <command...>): runs the command, fails the test with its output on error.
function(run_step name)
  message(STATUS "consumer: ${name}")
  execute_process(COMMAND ${ARGN}
                  RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rc STREQUAL "0")
    list(JOIN ARGN " " cmdline)
    message(FATAL_ERROR "consumer: step '${name}' failed (${rc})\n"
                        "command: ${cmdline}\n${out}")
  endif()
endfunction()

run_step(install ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

set(configure_args
  -S ${CONSUMER_DIR} -B ${consumer_build}
  -G ${GENERATOR}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  -DCMAKE_PREFIX_PATH=${prefix}
  # Only the fresh prefix may satisfy find_package(faultloop): no package registry, no
  # system-wide installation.
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
  -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF)
if(MAKE_PROGRAM)
  list(APPEND configure_args -DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM})
endif()
if(BUILD_TYPE)
  list(APPEND configure_args -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
endif()
if(DEFINED EXPECT_FAULTS)
  list(APPEND configure_args -DEXPECT_FAULTS=${EXPECT_FAULTS})
endif()
if(SANITIZE)
  # A sanitized static library needs the sanitizer runtime in the final link.
  set(san_flags "-fsanitize=${SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer")
  list(APPEND configure_args
    "-DCMAKE_CXX_FLAGS=${san_flags}"
    "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=${SANITIZE}")
endif()

run_step(configure ${CMAKE_COMMAND} ${configure_args})
# The package must come from the fresh prefix, not from an installation elsewhere.
file(STRINGS ${consumer_build}/CMakeCache.txt found_dir REGEX "^faultloop_DIR:")
string(REGEX REPLACE "^[^=]*=" "" found_dir "${found_dir}")
file(REAL_PATH ${prefix} real_prefix)
file(REAL_PATH "${found_dir}" real_found_dir)
string(FIND "${real_found_dir}" "${real_prefix}/" at)
if(NOT at EQUAL 0)
  message(FATAL_ERROR "consumer: faultloop was found in '${found_dir}', not under '${prefix}'")
endif()

run_step(build ${CMAKE_COMMAND} --build ${consumer_build})
run_step(run ${consumer_build}/faultloop_consumer)
message(STATUS "consumer: ok")
