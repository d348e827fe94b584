# Helpers shared by every folder: warnings and sanitizers as INTERFACE targets (no
# directory-wide flags), and the label rule of DESIGN's preset matrix.

# -Wno-missing-field-initializers: g++ 12 warns on every C++20 designated initializer that
# leaves a member to its default (`ConnectionHandlers{.on_request = f}`), which is the point
# of designated initializers; uninitialised members are caught by -Wuninitialized instead.
add_library(faultloop_warnings INTERFACE)
target_compile_options(faultloop_warnings INTERFACE -Wall -Wextra -Wpedantic -Wshadow
                       -Wno-missing-field-initializers
                       $<$<BOOL:${FAULTLOOP_WERROR}>:-Werror>)

add_library(faultloop_sanitize INTERFACE)
if(FAULTLOOP_SANITIZE)
  list(JOIN FAULTLOOP_SANITIZE "," _fl_san)
  target_compile_options(faultloop_sanitize INTERFACE -fsanitize=${_fl_san}
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(faultloop_sanitize INTERFACE -fsanitize=${_fl_san})
endif()

# faultloop_internal: what every target of ours links privately.
add_library(faultloop_internal INTERFACE)
target_link_libraries(faultloop_internal INTERFACE faultloop_warnings faultloop_sanitize)

# faultloop_add_gtest(NAME LABELS <labels> SOURCES <files...> LIBS <targets...>)
# One gtest binary; each test runs in its own process (discovery at test time, PRE_TEST, so
# sanitized binaries never run at build time), labelled with what it needs: `unit` when it
# injects nothing, `faults` when it needs the engine (DESIGN label matrix).
function(faultloop_add_gtest name)
  cmake_parse_arguments(ARG "" "" "LABELS;SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main
                        faultloop_internal)
  target_precompile_headers(${name} PRIVATE <gtest/gtest.h>)
  gtest_discover_tests(${name} DISCOVERY_MODE PRE_TEST
                       PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT 60)
endfunction()
