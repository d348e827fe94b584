# Install rules and the package config (DESIGN "Builds, presets, CI"): `cmake --install`
# installs the exported targets, their headers and lib/cmake/faultloop/faultloopConfig.cmake.
# Each build installs to its own prefix (a faults build's config says FAULTLOOP_FAULTS ON), so a
# consumer picks a build by prefix, as with sanitizer builds of a library.
#
# Included by the root CMakeLists.txt after every add_subdirectory, so the targets exist.
# The helper targets faultloop_internal/_warnings/_sanitize are linked as $<BUILD_INTERFACE:...>
# and never exported.

include(CMakePackageConfigHelpers)

set(FAULTLOOP_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/faultloop)

# faultloop_install_component(<target> <header folder> [EXCLUDE <subfolder>...]): exports
# <target> (as faultloop::<its EXPORT_NAME>) and installs every .h under <header folder>
# (tests/, bench/ and the EXCLUDE subfolders left out, e.g. another component's folder) at the
# same repository-rooted path under include/ (reactor/sys/sys.h -> include/reactor/sys/sys.h).
# The target names its include directory as faultloop_sys and faultloop_faults do:
#   $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}> $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
# (a bare source path cannot be exported), and links the helper targets as
# $<BUILD_INTERFACE:faultloop_internal>; its other dependencies must be found by
# cmake/faultloopConfig.cmake.in.
function(faultloop_install_component target header_dir)
  cmake_parse_arguments(ARG "" "" "EXCLUDE" ${ARGN})
  set(excludes "")
  foreach(dir IN LISTS ARG_EXCLUDE)
    list(APPEND excludes PATTERN "${dir}" EXCLUDE)
  endforeach()
  install(TARGETS ${target} EXPORT faultloopTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${header_dir}/
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${header_dir}
          FILES_MATCHING PATTERN "*.h"
          PATTERN "tests" EXCLUDE
          PATTERN "bench" EXCLUDE
          ${excludes})
endfunction()

# One line per installed target.
faultloop_install_component(faultloop_sys reactor/sys)
faultloop_install_component(faultloop_faults faults)
# reactor/*.h -> include/reactor; reactor/sys is faultloop_sys's (installed once, above).
faultloop_install_component(faultloop_reactor reactor EXCLUDE sys)

install(EXPORT faultloopTargets
        NAMESPACE faultloop::
        FILE faultloopTargets.cmake
        DESTINATION ${FAULTLOOP_INSTALL_CMAKEDIR})

# The config records the build's switches (normalised to ON/OFF).
if(FAULTLOOP_FAULTS)
  set(FAULTLOOP_CONFIG_FAULTS ON)
else()
  set(FAULTLOOP_CONFIG_FAULTS OFF)
endif()
configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/faultloopConfig.cmake.in
  ${PROJECT_BINARY_DIR}/faultloopConfig.cmake
  INSTALL_DESTINATION ${FAULTLOOP_INSTALL_CMAKEDIR}
  NO_SET_AND_CHECK_MACRO)
# 0.x: a minor release may break the API, so only the same minor version is compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/faultloopConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/faultloopConfig.cmake
              ${PROJECT_BINARY_DIR}/faultloopConfigVersion.cmake
        DESTINATION ${FAULTLOOP_INSTALL_CMAKEDIR})
