# One static library per layer, built from src/<layer>/**/*.cc (subfolders included); files ending in
# _test.cc form that layer's GoogleTest binary (tests live beside their code). Globbing keeps CMake out of
# every change that adds a file; CONFIGURE_DEPENDS re-runs the glob on each build.
#
# A layer sees only the layers it may use. Instead of all of src/, each layer compiles against
# ${CMAKE_BINARY_DIR}/layer-include/<layer>/, a folder of symlinks, one per visible layer, named after it
# and pointing to src/<that layer>: the layer itself, its ql_* DEPS, and what those see in turn (a
# dependency's public headers include its own dependencies' headers). Includes are written
# "layer/file.h" everywhere, so they resolve as before, and an include of a layer the target may not see
# fails to compile. The folder is a PUBLIC include directory: whatever links ql_<layer> (a layer above,
# the test binaries, the quantlab program and the benchmarks, which link ql_cli) sees that layer's set,
# and a layer's set already contains the sets of everything it links. scripts/check-layers.sh checks the
# finer rule the compiler cannot (direct includes against declared DEPS, no unused DEPS).
set(QL_LAYERS "" CACHE INTERNAL "")
set(QL_LIB_PCH_OWNER "" CACHE INTERNAL "")

# nlohmann/json, fmt and CLI11 are header-heavy: precompiling them cuts the build roughly in half on
# CI's 2 cores. A GCC precompiled header weighs 100-150 MB, so the layers share one (all are compiled
# with the same flags) instead of one each: a build tree is ~0.5 GB, not ~2 GB, which matters on CI
# machines with little free disk. Kernels and core do not use these headers; cli adds CLI11, which
# only it includes, so it keeps a header of its own. Sharing is unaffected by the per-layer include
# folders: the header holds only third-party and standard headers, and GCC does not require the -I
# list of a user of a .gch to match the one it was built with (-Winvalid-pch, which CMake adds, would
# say so otherwise).
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

# Makes <dir> hold exactly one symlink per layer in ARGN, <dir>/<layer> -> src/<layer>. Links already
# right are left alone; links to layers no longer visible are removed (file(REMOVE) unlinks a symlink,
# it never follows it into src/).
function(quantlab_layer_link_farm dir)
  set(wanted ${ARGN})
  file(MAKE_DIRECTORY ${dir})
  file(GLOB existing LIST_DIRECTORIES true RELATIVE ${dir} ${dir}/*)
  foreach(entry ${existing})
    if(NOT entry IN_LIST wanted)
      file(REMOVE ${dir}/${entry})
    endif()
  endforeach()
  foreach(layer ${wanted})
    set(link ${dir}/${layer})
    set(target ${CMAKE_SOURCE_DIR}/src/${layer})
    if(IS_SYMLINK ${link})
      file(READ_SYMLINK ${link} current)
      if(current STREQUAL target)
        continue()
      endif()
      file(REMOVE ${link})
    endif()
    file(CREATE_LINK ${target} ${link} SYMBOLIC)
  endforeach()
endfunction()

function(quantlab_layer name)
  cmake_parse_arguments(L "" "" "DEPS;TEST_DEPS" ${ARGN})
  # The layers this one sees: itself plus, for each ql_* dependency, what that dependency sees. A
  # dependency must be a layer declared earlier (the stack order of CMakeLists.txt).
  set(visible ${name})
  foreach(dep ${L_DEPS})
    if(dep MATCHES "^ql_(.+)$")
      if(NOT CMAKE_MATCH_1 IN_LIST QL_LAYERS)
        message(FATAL_ERROR "quantlab_layer(${name}): ${dep} is not a layer declared before ${name}; "
                            "a layer may only depend on the layers listed above it")
      endif()
      get_property(dep_visible GLOBAL PROPERTY QL_VISIBLE_${CMAKE_MATCH_1})
      list(APPEND visible ${dep_visible})
    endif()
  endforeach()
  list(REMOVE_DUPLICATES visible)
  set_property(GLOBAL PROPERTY QL_VISIBLE_${name} ${visible})
  set(include_dir ${CMAKE_BINARY_DIR}/layer-include/${name})
  quantlab_layer_link_farm(${include_dir} ${visible})

  file(GLOB_RECURSE all CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/${name}/*.cc)
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
    target_include_directories(ql_${name} PUBLIC ${include_dir})
    target_link_libraries(ql_${name} PUBLIC ${L_DEPS})
    quantlab_precompile_headers(${name})
  else()
    add_library(ql_${name} INTERFACE)
    target_include_directories(ql_${name} INTERFACE ${include_dir})
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
    foreach(dep ${test_deps})
      if(dep MATCHES "^ql_(.+)$" AND NOT CMAKE_MATCH_1 IN_LIST QL_LAYERS)
        message(FATAL_ERROR "quantlab_layer(${name}): TEST_DEPS ${dep} is not a layer")
      endif()
    endforeach()
    add_executable(test_${name} ${srcs})
    # A layer's tests link that layer (and, transitively, the layers above it) only, so each layer
    # builds and tests on its own. The cli tests drive the real binary. Through those links the tests
    # see the layer's include set plus the sets of its TEST_DEPS, and tests/ for the shared helpers.
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

  # The layer graph itself (label `layers`): scripts/check-layers.sh on this tree, and the script's own
  # test on small fake trees. Neither needs a build.
  find_program(QL_BASH bash REQUIRED)
  add_test(NAME layers.check COMMAND ${QL_BASH} ${CMAKE_SOURCE_DIR}/scripts/check-layers.sh ${CMAKE_SOURCE_DIR})
  add_test(NAME layers.check_script COMMAND ${QL_BASH} ${CMAKE_SOURCE_DIR}/tests/check_layers_test.sh
                                                        ${CMAKE_SOURCE_DIR}/scripts/check-layers.sh)
  set_tests_properties(layers.check layers.check_script PROPERTIES LABELS layers)
  # Every output on the bundled fixtures byte-identical to the digests recorded before the seams
  # refactor (quantize 2-8 bits, dequantize, fuse, logits, bench minus timings).
  add_test(NAME golden.outputs COMMAND ${QL_BASH} ${CMAKE_SOURCE_DIR}/tests/golden_outputs_test.sh
                                       ${CMAKE_BINARY_DIR}/bin/quantlab)
  set_tests_properties(golden.outputs PROPERTIES LABELS cli)
  # The official OpenAI client (npm `openai`, pinned) against `quantlab serve` (tests/openai-client/).
  add_test(NAME serve.openai_client COMMAND ${QL_BASH} ${CMAKE_SOURCE_DIR}/tests/openai_client_test.sh
                                            ${CMAKE_BINARY_DIR}/bin/quantlab ${CMAKE_BINARY_DIR}/openai-client)
  set_tests_properties(serve.openai_client PROPERTIES LABELS serve TIMEOUT 300)
endfunction()
