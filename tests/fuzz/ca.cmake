# CA: CSR parsing (untrusted input from agents). Source lives with the CA tests.
ipfleet_add_fuzzer(NAME fuzz_ca_csr SOURCES ${CMAKE_SOURCE_DIR}/tests/ca/csr_fuzz.cc
  LIBS ipfleet_ca ipfleet_common SECONDS 20)
target_include_directories(fuzz_ca_csr PRIVATE ${CMAKE_SOURCE_DIR}/ca/src)
