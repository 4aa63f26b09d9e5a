// Codec tests with hand-built byte vectors (layouts from RFC 7296 section 3).
#include <gtest/gtest.h>

#include "ipfleet/ike/codec.h"

namespace ipfleet::ike {
namespace {

// IKE header: SPIi=0102030405060708, SPIr=0, next=SA(33), ver 2.0, IKE_SA_INIT, flags I,
// msgid 0, then SA{ proposal 1 IKE: ENCR AES_GCM_16/128, PRF SHA2_256, DH 31 }, Nonce(16 x 0xaa).
Bytes InitVector() {
  Bytes m = {
      0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,  // SPIi
      0, 0, 0, 0, 0, 0, 0, 0,                          // SPIr
      33, 0x20, 34, 0x08,                              // next SA, v2.0, IKE_SA_INIT, I
      0, 0, 0, 0,                                      // message id
      0, 0, 0, 0,                                      // length (patched)
      // SA payload: next Nonce(40), flags, length 4+36
      40, 0, 0, 40,
      // proposal: last(0) res len=36 num=1 proto=IKE spisize=0 ntrans=3
      0, 0, 0, 36, 1, 1, 0, 3,
      // transform ENCR 20 with key length 128: more(3) res len=12 type=1 res id=20 attr 800e 0080
      3, 0, 0, 12, 1, 0, 0, 20, 0x80, 0x0e, 0x00, 0x80,
      // transform PRF 5
      3, 0, 0, 8, 2, 0, 0, 5,
      // transform DH 31 (last)
      0, 0, 0, 8, 4, 0, 0, 31,
      // Nonce payload: next none, len 20
      0, 0, 0, 20,
  };
  for (int i = 0; i < 16; ++i) m.push_back(0xaa);
  m[27] = static_cast<uint8_t>(m.size());
  return m;
}

TEST(IkeCodec, DecodesHandBuiltInit) {
  Bytes v = InitVector();
  auto m = DecodeMessage(v);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->header.spi_i, 0x0102030405060708ULL);
  EXPECT_EQ(m->header.exchange, ExchangeType::kIkeSaInit);
  EXPECT_TRUE(m->header.is_initiator());
  EXPECT_FALSE(m->header.is_response());
  ASSERT_EQ(m->payloads.size(), 2u);
  auto* sa = m->Get<SaPayload>(PayloadType::kSa);
  ASSERT_NE(sa, nullptr);
  ASSERT_EQ(sa->proposals.size(), 1u);
  const auto& p = sa->proposals[0];
  EXPECT_EQ(p.protocol, ProtocolId::kIke);
  ASSERT_EQ(p.transforms.size(), 3u);
  EXPECT_EQ(p.transforms[0].id, encr::kAesGcm16);
  EXPECT_EQ(p.transforms[0].key_length(), 128);
  EXPECT_EQ(p.transforms[2].type, TransformType::kDh);
  EXPECT_EQ(p.transforms[2].id, dh::kCurve25519);
  auto* n = m->Get<NoncePayload>(PayloadType::kNonce);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->data, Bytes(16, 0xaa));
}

TEST(IkeCodec, EncoderReproducesHandBuiltBytes) {
  Message m;
  m.header.spi_i = 0x0102030405060708ULL;
  m.header.exchange = ExchangeType::kIkeSaInit;
  m.header.flags = kFlagInitiator;
  Proposal p;
  p.transforms = {MakeTransform(TransformType::kEncr, encr::kAesGcm16, 128),
                  MakeTransform(TransformType::kPrf, prf::kHmacSha256),
                  MakeTransform(TransformType::kDh, dh::kCurve25519)};
  m.payloads.push_back(Payload{PayloadType::kSa, false, SaPayload{{p}}});
  m.payloads.push_back(Payload{PayloadType::kNonce, false, NoncePayload{Bytes(16, 0xaa)}});
  EXPECT_EQ(EncodeMessage(m), InitVector());
}

TEST(IkeCodec, RoundTripsEveryPayloadType) {
  Message m;
  m.header.spi_i = 1;
  m.header.spi_r = 2;
  m.header.exchange = ExchangeType::kIkeAuth;
  m.header.message_id = 1;
  std::vector<Payload>& ps = m.payloads;
  ps.push_back({PayloadType::kKe, false, KePayload{19, Bytes(64, 7)}});
  ps.push_back({PayloadType::kIdi, false, IdPayload{IdType::kFqdn, Bytes{'a', '.', 'b'}}});
  ps.push_back({PayloadType::kIdr, false, IdPayload{IdType::kIpv4, Bytes{192, 0, 2, 1}}});
  ps.push_back({PayloadType::kCert, false, CertPayload{CertEncoding::kX509Signature, Bytes{1, 2, 3}}});
  ps.push_back({PayloadType::kCertReq, false, CertReqPayload{CertEncoding::kX509Signature, Bytes(20, 9)}});
  ps.push_back({PayloadType::kAuth, false, AuthPayload{AuthMethod::kDigitalSignature, Bytes{5, 6}}});
  ps.push_back(MakeNotify(NotifyType::kSignatureHashAlgorithms, Bytes{0, 2, 0, 3}));
  ps.push_back({PayloadType::kDelete, false, DeletePayload{ProtocolId::kEsp, 4, {Bytes{1, 2, 3, 4}, Bytes{5, 6, 7, 8}}}});
  ps.push_back({PayloadType::kVendorId, false, VendorIdPayload{Bytes{'x'}}});
  TrafficSelector v4{TsType::kIpv4AddrRange, 6, 80, 80, Bytes{10, 0, 0, 0}, Bytes{10, 0, 0, 255}};
  TrafficSelector v6{TsType::kIpv6AddrRange, 0, 0, 65535, Bytes(16, 0), Bytes(16, 0xff)};
  ps.push_back({PayloadType::kTsi, false, TsPayload{{v4, v6}}});
  ps.push_back({PayloadType::kTsr, false, TsPayload{{v4}}});
  Bytes wire = EncodeMessage(m);
  auto d = DecodeMessage(wire);
  ASSERT_TRUE(d.ok()) << d.status();
  ASSERT_EQ(d->payloads.size(), ps.size());
  EXPECT_EQ(d->Get<KePayload>(PayloadType::kKe)->group, 19);
  EXPECT_EQ(d->Get<IdPayload>(PayloadType::kIdr)->data, (Bytes{192, 0, 2, 1}));
  EXPECT_EQ(d->Get<DeletePayload>(PayloadType::kDelete)->spis.size(), 2u);
  EXPECT_EQ(d->Get<TsPayload>(PayloadType::kTsi)->selectors[1], v6);
  EXPECT_EQ(d->FindNotify(NotifyType::kSignatureHashAlgorithms)->data, (Bytes{0, 2, 0, 3}));
  EXPECT_EQ(EncodeMessage(*d), wire);
}

TEST(IkeCodec, SkPayloadEndsChainAndKeepsInnerType) {
  Message m;
  m.header.spi_i = 1;
  m.header.spi_r = 2;
  m.header.exchange = ExchangeType::kInformational;
  m.payloads.push_back({PayloadType::kSk, true, SkPayload{PayloadType::kDelete, Bytes(40, 1)}});
  Bytes w = EncodeMessage(m);
  EXPECT_EQ(w[16], 46);            // header next payload = SK
  EXPECT_EQ(w[kHeaderSize], 42);   // SK's next payload = first inner (Delete)
  auto d = DecodeMessage(w);
  ASSERT_TRUE(d.ok()) << d.status();
  auto* sk = d->Get<SkPayload>(PayloadType::kSk);
  ASSERT_NE(sk, nullptr);
  EXPECT_EQ(sk->first_inner, PayloadType::kDelete);
  EXPECT_EQ(sk->body.size(), 40u);
  // Trailing bytes after SK are refused.
  w.push_back(0);
  w[27] += 1;
  EXPECT_FALSE(DecodeMessage(w).ok());
}

TEST(IkeCodec, RejectsEveryTruncation) {
  Bytes v = InitVector();
  for (size_t n = 0; n < v.size(); ++n) {
    Bytes t(v.begin(), v.begin() + n);
    if (t.size() >= kHeaderSize) t[27] = static_cast<uint8_t>(n);  // keep header length consistent
    EXPECT_FALSE(DecodeMessage(t).ok()) << "length " << n;
  }
}

TEST(IkeCodec, RejectsLengthMismatches) {
  Bytes v = InitVector();
  Bytes bad = v;
  bad[27] += 1;  // header length != datagram size
  EXPECT_FALSE(DecodeMessage(bad).ok());
  bad = v;
  bad[kHeaderSize + 3] = 45;  // SA payload length beyond the message
  EXPECT_FALSE(DecodeMessage(bad).ok());
  bad = v;
  bad[kHeaderSize + 3] = 3;  // payload length < 4
  EXPECT_FALSE(DecodeMessage(bad).ok());
  bad = v;
  bad[kHeaderSize + 4 + 7] = 4;  // transform count disagrees
  EXPECT_FALSE(DecodeMessage(bad).ok());
  bad = v;
  bad[kHeaderSize + 4 + 8] = 0;  // first transform claims 'last' but more follow
  EXPECT_FALSE(DecodeMessage(bad).ok());
  bad = v;
  bad[17] = 0x30;  // major version 3
  auto s = DecodeMessage(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(IsInvalidMajorVersion(s.status()));
}

TEST(IkeCodec, NonceLengthLimits) {
  Bytes v = InitVector();
  // Shrink the nonce to 15 bytes: RFC 7296 3.9 requires at least 16.
  v.pop_back();
  v[27] = static_cast<uint8_t>(v.size());
  v[v.size() - 15 - 1] = 19;
  EXPECT_FALSE(DecodeMessage(v).ok());
}

TEST(IkeCodec, UnknownPayloadCriticalBit) {
  auto make = [](bool critical) {
    Message m;
    m.header.spi_i = 1;
    m.header.exchange = ExchangeType::kInformational;
    m.payloads.push_back({static_cast<PayloadType>(200), critical, UnknownPayload{200, critical, Bytes{1, 2}}});
    m.payloads.push_back({PayloadType::kNonce, false, NoncePayload{Bytes(16, 1)}});
    return EncodeMessage(m);
  };
  auto ok = DecodeMessage(make(false));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->payloads.size(), 2u);  // skipped over, next payload still parsed
  auto bad = DecodeMessage(make(true));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(UnsupportedCriticalType(bad.status()), 200);
}

TEST(IkeCodec, RejectsMalformedTrafficSelectorAndDelete) {
  // TS payload: 1 selector of type 7 claiming length 40 (IPv6 length).
  Bytes ts = {1, 0, 0, 0, 7, 0, 0, 40, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255};
  Bytes chain = {0, 0, 0, static_cast<uint8_t>(4 + ts.size())};
  chain.insert(chain.end(), ts.begin(), ts.end());
  EXPECT_FALSE(DecodeChain(PayloadType::kTsi, chain).ok());
  // Delete ESP with 2 SPIs announced, one present.
  Bytes del = {0, 0, 0, 12, 3, 4, 0, 2, 1, 2, 3, 4};
  EXPECT_FALSE(DecodeChain(PayloadType::kDelete, del).ok());
  // IKE delete must have no SPIs.
  Bytes ike_del = {0, 0, 0, 8, 1, 8, 0, 0};
  EXPECT_FALSE(DecodeChain(PayloadType::kDelete, ike_del).ok());
}

}  // namespace
}  // namespace ipfleet::ike
