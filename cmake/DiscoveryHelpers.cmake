# discovery_cc_library(NAME n [HDRS ...] [SRCS ...] [DEPS ...] [PRIVATE_DEPS ...])
#   Creates discovery_<n> with alias discovery::<n>. Header-only when SRCS is empty.
# discovery_cc_test(NAME n SRCS ... [DEPS ...] [LABELS unit|integration] [TIMEOUT seconds])
#   Creates a gtest executable registered with ctest under the given label; TIMEOUT bounds each
#   of its tests (ctest's own default is none).

add_library(discovery_warnings INTERFACE)
target_compile_options(discovery_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Woverloaded-virtual -Wold-style-cast
  -Wimplicit-fallthrough -Wno-missing-field-initializers -Werror)

function(discovery_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "HDRS;SRCS;DEPS;PRIVATE_DEPS" ${ARGN})
  set(target discovery_${ARG_NAME})
  if(ARG_SRCS)
    add_library(${target} STATIC ${ARG_SRCS} ${ARG_HDRS})
    target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS} discovery_warnings)
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE ${PROJECT_SOURCE_DIR}/src)
    target_link_libraries(${target} INTERFACE ${ARG_DEPS})
  endif()
  add_library(discovery::${ARG_NAME} ALIAS ${target})
endfunction()

# Builds every test executable labelled "concurrent" (what the TSan run needs).
add_custom_target(discovery_concurrent_tests)

function(discovery_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT DISCOVERY_BUILD_TESTS)
    return()
  endif()
  if(NOT ARG_LABELS)
    set(ARG_LABELS unit)
  endif()
  set(target discovery_${ARG_NAME})
  add_executable(${target} ${ARG_SRCS})
  target_link_libraries(${target} PRIVATE ${ARG_DEPS} GTest::gmock GTest::gtest_main discovery_warnings)
  if("thread" IN_LIST DISCOVERY_SANITIZE)
    # Debian's abseil is not built with TSan; this shim (tests/testing/tsan_absl_mutex.cc)
    # makes absl::Mutex visible to it and loads tests/tsan.supp.
    target_link_libraries(${target} PRIVATE discovery_tsan_absl_mutex)
  endif()
  if("concurrent" IN_LIST ARG_LABELS)
    add_dependencies(discovery_concurrent_tests ${target})
  endif()
  # gtest_discover_tests cannot carry a list through its generated script, so several labels
  # become one ("unit+concurrent"); ctest -L takes a regex, so -L concurrent still selects it.
  list(JOIN ARG_LABELS "+" labels)
  set(properties LABELS "${labels}")
  if(ARG_TIMEOUT)
    list(APPEND properties TIMEOUT ${ARG_TIMEOUT})
  endif()
  gtest_discover_tests(${target} DISCOVERY_TIMEOUT 120 PROPERTIES ${properties})
endfunction()
