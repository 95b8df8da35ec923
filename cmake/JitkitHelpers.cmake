# Helpers every module's CMakeLists.txt uses, so that warnings, labels, install rules and the
# benchmark list stay the same everywhere.

include(GNUInstallDirs)
find_package(Threads REQUIRED)

# Compiler warnings for jitkit's own code (not for users of the installed library).
function(jitkit_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
    -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual -Wnull-dereference
    -Wimplicit-fallthrough)
  if(JITKIT_WARNINGS_AS_ERRORS)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# jitkit_add_module(<module> SOURCES <files...> [DEPS <jitkit modules...>] [LIBS <other libs...>])
# Defines the static library jitkit_<module> (alias jitkit::<module>), exported for
# find_package(jitkit). DEPS names lower jitkit layers only, e.g. DEPS base code.
function(jitkit_add_module module)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;LIBS;PRIVATE_LIBS" ${ARGN})
  set(target jitkit_${module})
  add_library(${target} STATIC ${ARG_SOURCES})
  add_library(jitkit::${module} ALIAS ${target})
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${module} OUTPUT_NAME jitkit_${module})
  target_include_directories(${target} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>
    PRIVATE ${PROJECT_SOURCE_DIR}/src)
  foreach(dep IN LISTS ARG_DEPS)
    target_link_libraries(${target} PUBLIC jitkit_${dep})
  endforeach()
  target_link_libraries(${target} PUBLIC ${ARG_LIBS} Threads::Threads PRIVATE ${ARG_PRIVATE_LIBS})
  jitkit_set_warnings(${target})
  install(TARGETS ${target} EXPORT jitkitTargets)
  set_property(GLOBAL APPEND PROPERTY JITKIT_BUILT_MODULES ${target})
endfunction()

# jitkit_add_gtest(<target> LABELS <labels...> SOURCES <files...> [LIBS <libs...>]
#                  [TIMEOUT <seconds>] [ENVIRONMENT <VAR=value...>])
# One GoogleTest binary; every TEST in it becomes a CTest test carrying LABELS
# (module labels from DESIGN.md: asm code patch rseq debug som stress).
function(jitkit_add_gtest target)
  cmake_parse_arguments(ARG "" "TIMEOUT" "SOURCES;LIBS;LABELS;ENVIRONMENT" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  add_executable(${target} ${ARG_SOURCES})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main Threads::Threads)
  jitkit_set_warnings(${target})
  gtest_discover_tests(${target} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60)
  # gtest_discover_tests(PROPERTIES ...) flattens list values ("LABELS patch;stress" becomes
  # LABELS=patch plus a bogus property "stress"), so the properties are applied by a script that
  # CTest runs after discovery, over the discovered list <target>_TESTS.
  set(script ${CMAKE_CURRENT_BINARY_DIR}/${target}_properties.cmake)
  file(WRITE ${script}
    "if(${target}_TESTS)\n"
    "  set_tests_properties(\${${target}_TESTS} PROPERTIES LABELS \"${ARG_LABELS}\" TIMEOUT ${ARG_TIMEOUT})\n")
  if(ARG_ENVIRONMENT)
    file(APPEND ${script}
      "  set_tests_properties(\${${target}_TESTS} PROPERTIES ENVIRONMENT \"${ARG_ENVIRONMENT}\")\n")
  endif()
  file(APPEND ${script} "endif()\n")
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES ${script})
endfunction()

# jitkit_add_benchmark(<target> SOURCES <files...> [LIBS <libs...>])
# One Google Benchmark binary. `make bench` runs every one of them and writes
# build/bench/<target>.json.
function(jitkit_add_benchmark target)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${target} ${ARG_SOURCES})
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/bench)
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} benchmark::benchmark Threads::Threads)
  set_target_properties(${target} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bench/bin)
  jitkit_set_warnings(${target})
  set_property(GLOBAL APPEND PROPERTY JITKIT_BENCHMARKS ${target})
endfunction()

# Writes build/bench/benchmarks.txt: one benchmark binary path a line, read by `make bench`.
function(jitkit_write_benchmark_list)
  get_property(benches GLOBAL PROPERTY JITKIT_BENCHMARKS)
  set(lines "")
  foreach(b IN LISTS benches)
    string(APPEND lines "$<TARGET_FILE:${b}>\n")
  endforeach()
  file(GENERATE OUTPUT ${CMAKE_BINARY_DIR}/bench/benchmarks.txt CONTENT "${lines}")
endfunction()
