// libFuzzer target for the IKEv2 message decoder (untrusted input straight off UDP 500/4500):
// whole-message decode, then every payload chain decode and a re-encode round trip.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "ipfleet/ike/codec.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ipfleet::ike;
  ByteView in(data, size);
  auto m = DecodeMessage(in);
  if (m.ok()) {
    // A decoded message must re-encode to something that decodes to the same payload count.
    Bytes again = EncodeMessage(*m);
    auto m2 = DecodeMessage(again);
    if (!m2.ok() || m2->payloads.size() != m->payloads.size()) std::abort();
  }
  // The same bytes as the decrypted inner chain of an SK payload, for each first payload type.
  if (size > 1) {
    auto c = DecodeChain(static_cast<PayloadType>(data[0]), in.subspan(1));
    if (c.ok()) (void)EncodeChain(*c);
  }
  return 0;
}
