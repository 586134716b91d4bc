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
