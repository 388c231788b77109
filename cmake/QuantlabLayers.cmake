# One static library per layer, built from src/<layer>/*.cc; files ending in _test.cc form that layer's
# GoogleTest binary (tests live beside their code). Globbing keeps CMake out of every change that adds a
# file; CONFIGURE_DEPENDS re-runs the glob on each build.
set(QL_LAYERS "" CACHE INTERNAL "")
set(QL_LIB_PCH_OWNER "" CACHE INTERNAL "")

# nlohmann/json, fmt and CLI11 are header-heavy: precompiling them cuts the build roughly in half on
# CI's 2 cores. A GCC precompiled header weighs 100-150 MB, so the layers share one (all are compiled
# with the same flags) instead of one each: a build tree is ~0.5 GB, not ~2 GB, which matters on CI
# machines with little free disk. Kernels and core do not use these headers; cli adds CLI11, which
# only it includes, so it keeps a header of its own.
function(quantlab_precompile_headers name)
  if(name STREQUAL "kernels" OR name STREQUAL "core")
    return()
  endif()
  if(name STREQUAL "cli")
    target_precompile_headers(ql_cli PRIVATE <nlohmann/json.hpp> <fmt/format.h> <string> <vector> <map>
                              <CLI/CLI.hpp>)
  elseif(QL_LIB_PCH_OWNER)
    target_precompile_headers(ql_${name} REUSE_FROM ${QL_LIB_PCH_OWNER})
  else()
    target_precompile_headers(ql_${name} PRIVATE <nlohmann/json.hpp> <fmt/format.h> <string> <vector> <map>)
    set(QL_LIB_PCH_OWNER ql_${name} CACHE INTERNAL "")
  endif()
endfunction()

function(quantlab_layer name)
  cmake_parse_arguments(L "" "" "DEPS;TEST_DEPS" ${ARGN})
  file(GLOB all CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.cc)
  set(lib_sources "")
  set(test_sources "")
  foreach(f ${all})
    if(f MATCHES "_test\\.cc$")
      list(APPEND test_sources ${f})
    elseif(NOT f MATCHES "/main\\.cc$")
      list(APPEND lib_sources ${f})
    endif()
  endforeach()
  if(lib_sources)
    add_library(ql_${name} STATIC ${lib_sources})
    target_include_directories(ql_${name} PUBLIC ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(ql_${name} PUBLIC ${L_DEPS})
    quantlab_precompile_headers(${name})
  else()
    add_library(ql_${name} INTERFACE)
    target_include_directories(ql_${name} INTERFACE ${CMAKE_SOURCE_DIR}/src)
    target_link_libraries(ql_${name} INTERFACE ${L_DEPS})
  endif()
  set_property(GLOBAL APPEND PROPERTY QL_TEST_SOURCES_${name} ${test_sources})
  set_property(GLOBAL APPEND PROPERTY QL_TEST_DEPS_${name} ${L_TEST_DEPS})
  set(QL_LAYERS ${QL_LAYERS} ${name} CACHE INTERNAL "")
endfunction()

function(quantlab_layer_tests)
  set(pch_owner "")
  foreach(name ${QL_LAYERS})
    get_property(srcs GLOBAL PROPERTY QL_TEST_SOURCES_${name})
    if(NOT srcs)
      continue()
    endif()
    get_property(test_deps GLOBAL PROPERTY QL_TEST_DEPS_${name})
    add_executable(test_${name} ${srcs})
    # A layer's tests link that layer (and, transitively, the layers above it) only, so each layer
    # builds and tests on its own. The cli tests drive the real binary.
    target_link_libraries(test_${name} PRIVATE ql_${name} ${test_deps} GTest::gtest GTest::gmock GTest::gtest_main)
    target_include_directories(test_${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
    # One precompiled header for all test binaries, as for the layers (see quantlab_precompile_headers).
    if(pch_owner)
      target_precompile_headers(test_${name} REUSE_FROM ${pch_owner})
    else()
      target_precompile_headers(test_${name} PRIVATE <gtest/gtest.h> <nlohmann/json.hpp> <fmt/format.h> <string> <vector>)
      set(pch_owner test_${name})
    endif()
    target_compile_definitions(test_${name} PRIVATE
      QUANTLAB_TEST_DATA="${CMAKE_SOURCE_DIR}/tests/data"
      QUANTLAB_BINARY="${CMAKE_BINARY_DIR}/bin/quantlab")
    if(name STREQUAL "cli")
      add_dependencies(test_${name} quantlab)
    endif()
    set_target_properties(test_${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
    gtest_discover_tests(test_${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS ${name})
  endforeach()
endfunction()
