# Helpers shared by every tests/ folder.
#
# ipfleet_add_test(NAME name LABEL label SOURCES a.cc b.cc LIBS x y [TIMEOUT s])
#   builds a GoogleTest binary and registers each of its tests with ctest under `label`
#   (unit, inproc, netns, lab, interop, e2e, fuzz), so a tier runs alone with `ctest -L label`.
find_package(GTest)
include(GoogleTest)

function(ipfleet_add_test)
  cmake_parse_arguments(T "" "NAME;LABEL;TIMEOUT" "SOURCES;LIBS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${T_NAME} ${T_SOURCES})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main GTest::gmock)
  gtest_discover_tests(${T_NAME}
    PROPERTIES LABELS ${T_LABEL} TIMEOUT ${T_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
