// The Encrypted Fragment payload (SKF, RFC 7383 2.5): like SK, with a 4-byte Fragment Number /
// Total Fragments field after the generic header, covered by the ICV (AAD for AES-GCM). Each
// fragment is encrypted on its own, so a receiver can authenticate it before keeping it.
#include <openssl/rand.h>

#include "ipfleet/ike/codec.h"
#include "ipfleet/ike/crypto.h"

namespace ipfleet::ike {

size_t SkCipher::MaxFragmentChunk(size_t datagram_len) const {
  // Header, SKF header (4 generic + 4), IV, ICV; then the plaintext needs its pad length octet
  // and, for CBC, a whole number of blocks.
  size_t iv_len = aead_ ? 8 : 16;
  size_t fixed = kHeaderSize + kGenericPayloadHeaderSize + 4 + iv_len + icv_len_;
  if (datagram_len <= fixed + 16) return 0;
  size_t room = datagram_len - fixed;
  if (!aead_) room -= room % 16;
  return room - 1;
}

absl::StatusOr<Bytes> SkCipher::ProtectFragment(Header h, PayloadType first_inner, uint16_t number, uint16_t total,
                                                ByteView chunk, ByteView ekey, ByteView akey) const {
  if (ekey.size() != encr_key_len() || akey.size() != integ_key_len())
    return absl::InvalidArgumentError("SKF protect: key length mismatch");
  if (number == 0 || number > total) return absl::InvalidArgumentError("SKF protect: bad fragment number");
  size_t iv_len = aead_ ? 8 : 16;
  size_t block = aead_ ? 1 : 16;
  size_t pad = (block - (chunk.size() + 1) % block) % block;
  Bytes pt(chunk.begin(), chunk.end());
  pt.resize(chunk.size() + pad, 0);
  pt.push_back(static_cast<uint8_t>(pad));
  size_t body_len = 4 + iv_len + pt.size() + icv_len_;  // frag fields + IV + ciphertext + ICV
  h.next_payload = PayloadType::kSkf;
  h.length = static_cast<uint32_t>(kHeaderSize + kGenericPayloadHeaderSize + body_len);
  Bytes out;
  out.reserve(h.length);
  AppendHeader(h, out);
  // RFC 7383 2.5: Next Payload is the first inner payload in fragment 1, zero in the others.
  out.push_back(number == 1 ? static_cast<uint8_t>(first_inner) : 0);
  out.push_back(0);
  out.push_back(static_cast<uint8_t>((kGenericPayloadHeaderSize + body_len) >> 8));
  out.push_back(static_cast<uint8_t>((kGenericPayloadHeaderSize + body_len) & 0xff));
  out.push_back(static_cast<uint8_t>(number >> 8));
  out.push_back(static_cast<uint8_t>(number & 0xff));
  out.push_back(static_cast<uint8_t>(total >> 8));
  out.push_back(static_cast<uint8_t>(total & 0xff));
  uint8_t iv[16];
  if (RAND_bytes(iv, static_cast<int>(iv_len)) != 1) return absl::InternalError("RAND_bytes failed");
  if (aead_) {
    uint8_t nonce[12];
    std::copy(ekey.end() - 4, ekey.end(), nonce);
    std::copy(iv, iv + 8, nonce + 4);
    IPFLEET_ASSIGN_OR_RETURN(Bytes ct, GcmSeal(ekey.first(key_bytes_), ByteView(nonce, 12), out, pt));
    out.insert(out.end(), iv, iv + 8);
    out.insert(out.end(), ct.begin(), ct.end());
  } else {
    IPFLEET_ASSIGN_OR_RETURN(Bytes ct, CbcEncryptRaw(ekey, ByteView(iv, 16), pt));
    out.insert(out.end(), iv, iv + 16);
    out.insert(out.end(), ct.begin(), ct.end());
    IPFLEET_ASSIGN_OR_RETURN(Bytes mac, Hmac(integ_hash_, akey, out));
    out.insert(out.end(), mac.begin(), mac.begin() + icv_len_);
  }
  Wipe(pt);
  return out;
}

}  // namespace ipfleet::ike
