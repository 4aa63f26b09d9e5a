# IKEv2 decoder fuzzing; seeds are real exchanges dumped by ike_engine_test
# (IPFLEET_IKE_CORPUS_DIR=tests/fuzz/corpus/fuzz_ike_decode).
ipfleet_add_fuzzer(NAME fuzz_ike_decode SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_ike_decode.cc LIBS ipfleet_ike SECONDS 20)
