# tern_test(NAME SOURCES a.cc b.cc LIBS x y LABELS unit [ENV K=V ...])
# One GoogleTest binary registered as one ctest entry, labelled for `ctest -L`.
function(tern_test name)
  if(NOT TERN_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS;ENV" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    TERN_SOURCE_DIR="${CMAKE_SOURCE_DIR}"
    TERN_SHARED_DIR="${TERN_SHARED_DIR}"
    TERN_BINARY_DIR="${CMAKE_BINARY_DIR}")
  add_test(NAME ${name} COMMAND ${name} --gtest_brief=1)
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT 300
    ENVIRONMENT "${T_ENV}")
endfunction()

# tern_fuzz(NAME SOURCES a.cc LIBS x CORPUS dir-or-file ...)
# A libFuzzer target. In the `fuzz` preset (clang, TERN_FUZZ=ON) it links libFuzzer; in every
# other build it links core/testing/fuzz_driver.cc and its corpus runs as a unit test.
option(TERN_FUZZ "Build fuzz targets with clang's libFuzzer" OFF)
if(TERN_FUZZ)
  # Coverage instrumentation for every library the targets call into, not only the target's own
  # file: libFuzzer is guided by what the parsers do.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
function(tern_fuzz name)
  cmake_parse_arguments(F "" "" "SOURCES;LIBS;CORPUS" ${ARGN})
  if(TERN_FUZZ)
    add_executable(${name} ${F_SOURCES})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${name} PRIVATE ${F_LIBS})
  elseif(TERN_BUILD_TESTS)
    add_executable(${name} ${F_SOURCES} ${CMAKE_SOURCE_DIR}/core/testing/fuzz_driver.cc)
    target_link_libraries(${name} PRIVATE ${F_LIBS})
    add_test(NAME ${name} COMMAND ${name} ${F_CORPUS})
    set_tests_properties(${name} PROPERTIES LABELS "unit;fuzz" TIMEOUT 300)
  endif()
endfunction()
