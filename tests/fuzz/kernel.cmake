# XFRM netlink message parsers (agent/kernel). Sources live in tests/kernel/.
ipfleet_add_fuzzer(NAME fuzz_kernel_nl_parse
  SOURCES ${CMAKE_SOURCE_DIR}/tests/kernel/fuzz_nl_parse.cc
  LIBS ipfleet_kernel PkgConfig::libmnl
  SECONDS 20)
target_include_directories(fuzz_kernel_nl_parse PRIVATE ${CMAKE_SOURCE_DIR}/agent/kernel/src)
