// Known-answer tests for the IKEv2 primitives. Each vector names its published source.
#include <gtest/gtest.h>

#include <string>

#include "ipfleet/ike/codec.h"
#include "ipfleet/ike/crypto.h"

namespace ipfleet::ike {
namespace {

Bytes Str(const std::string& s) { return Bytes(s.begin(), s.end()); }

// RFC 4231 section 4.2 (test case 1) and 4.3 (test case 2): HMAC-SHA-256/384/512.
TEST(IkeCrypto, HmacRfc4231) {
  Bytes k1(20, 0x0b);
  Bytes d1 = Str("Hi There");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha256, k1, d1)), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha384, k1, d1)),
            "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59cfaea9ea9076ede7f4af152e8b2fa9cb6");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha512, k1, d1)),
            "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4"
            "be9d914eeb61f1702e696c203a126854");
  Bytes k2 = Str("Jefe");
  Bytes d2 = Str("what do ya want for nothing?");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha256, k2, d2)), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // RFC 4231 test case 6: key longer than the block size (131 bytes of 0xaa).
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha256, Bytes(131, 0xaa), Str("Test Using Larger Than Block-Size Key - Hash Key First"))),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// RFC 4231 section 4.6 (test case 5, truncation to 128 bits), which is how RFC 4868's
// HMAC-SHA2-*_128/192/256 integrity ICVs are formed; the SK payload uses the leading bytes.
TEST(IkeCrypto, HmacTruncationRfc4231Case5) {
  Bytes k(20, 0x0c);
  Bytes d = Str("Test With Truncation");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha256, k, d)).substr(0, 32), "a3b6167473100ee06e0c796c2955552b");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha384, k, d)).substr(0, 32), "3abf34c3503b2a23a46efc619baef897");
  EXPECT_EQ(Hex(*Hmac(HashAlg::kSha512, k, d)).substr(0, 32), "415fad6271580a531d4179bc891d87a6");
}

// RFC 4868 section 2.7.1 PRF test case 1 equals RFC 4231 case 1; prf+ (RFC 7296 2.13) expected
// blocks computed independently with `openssl dgst -sha256 -mac HMAC` chaining T1..T3 by hand:
//   T1 = HMAC("key", "seed"|01), T2 = HMAC("key", T1|"seed"|02), T3 = HMAC("key", T2|"seed"|03).
TEST(IkeCrypto, PrfPlusRfc7296Construction) {
  Prf prf(HashAlg::kSha256);
  auto out = prf.Plus(Str("key"), Str("seed"), 80);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Hex(*out),
            "a2392e429a99b173341b368bb5ce320bfd483d89567c14ec187c2d77e3c0a208"
            "ba45d21d42611712996c0cd4b329ac8681e093a8a5bbbbf0fb8c9d1cf674f742"
            "3fe3d2fbd6641ff544749daa37804f04");
  EXPECT_FALSE(prf.Plus(Str("key"), Str("seed"), 32 * 256).ok());  // more than 255 blocks
}

TEST(IkeCrypto, DeriveIkeKeysLayout) {
  // SKEYSEED = prf(Ni|Nr, g^ir); the stream is prf+(SKEYSEED, Ni|Nr|SPIi|SPIr) split in order
  // SK_d, SK_ai, SK_ar, SK_ei, SK_er, SK_pi, SK_pr (RFC 7296 2.14).
  Prf prf(HashAlg::kSha256);
  Bytes ni(32, 1), nr(32, 2), shared(32, 3);
  IkeKeyLengths lens{20, 32, 32};
  auto k = DeriveIkeKeys(prf, lens, ni, nr, shared, 0x1122334455667788ULL, 0x99aabbccddeeff00ULL);
  ASSERT_TRUE(k.ok()) << k.status();
  Bytes nn = ni;
  nn.insert(nn.end(), nr.begin(), nr.end());
  EXPECT_EQ(k->skeyseed, *Hmac(HashAlg::kSha256, nn, shared));
  Bytes seed = nn;
  Bytes spis = Unhex("112233445566778899aabbccddeeff00");
  seed.insert(seed.end(), spis.begin(), spis.end());
  Bytes stream = *prf.Plus(k->skeyseed, seed, 3 * 32 + 2 * 32 + 2 * 20);
  EXPECT_EQ(k->sk_d, Bytes(stream.begin(), stream.begin() + 32));
  EXPECT_EQ(k->sk_ai, Bytes(stream.begin() + 32, stream.begin() + 64));
  EXPECT_EQ(k->sk_ei, Bytes(stream.begin() + 96, stream.begin() + 116));
  EXPECT_EQ(k->sk_pr, Bytes(stream.end() - 32, stream.end()));
  auto km = DeriveChildKeymat(prf, k->sk_d, {}, ni, nr, 72);
  ASSERT_TRUE(km.ok());
  EXPECT_EQ(*km, *prf.Plus(k->sk_d, nn, 72));
}

// RFC 7748 section 6.1 (X25519 Diffie-Hellman).
TEST(IkeCrypto, X25519Rfc7748) {
  auto a = DhKey::FromPrivate(dh::kCurve25519, Unhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"), {});
  auto b = DhKey::FromPrivate(dh::kCurve25519, Unhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb"), {});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(Hex(a->public_value()), "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  EXPECT_EQ(Hex(b->public_value()), "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  auto s = a->Derive(b->public_value());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(Hex(*s), "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  // RFC 8031 section 2.3 / RFC 7748 section 6.1: an all-zero result (low-order point) is refused.
  EXPECT_FALSE(a->Derive(Bytes(32, 0)).ok());
  Bytes order1 = Unhex("0100000000000000000000000000000000000000000000000000000000000000");
  EXPECT_FALSE(a->Derive(order1).ok());
  EXPECT_FALSE(a->Derive(Bytes(31, 9)).ok());  // wrong length
}

// RFC 5903 section 8.1 (256-bit random ECP group) and 8.2 (384-bit).
TEST(IkeCrypto, EcpRfc5903) {
  struct V {
    uint16_t group;
    const char *i, *gi, *r, *gr, *gir;
  } vs[] = {
      {dh::kEcp256, "C88F01F510D9AC3F70A292DAA2316DE544E9AAB8AFE84049C62A9C57862D1433",
       "DAD0B65394221CF9B051E1FECA5787D098DFE637FC90B9EF945D0C3772581180"
       "5271A0461CDB8252D61F1C456FA3E59AB1F45B33ACCF5F58389E0577B8990BB3",
       "C6EF9C5D78AE012A011164ACB397CE2088685D8F06BF9BE0B283AB46476BEE53",
       "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63"
       "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB",
       "D6840F6B42F6EDAFD13116E0E12565202FEF8E9ECE7DCE03812464D04B9442DE"},
      {dh::kEcp384,
       "099F3C7034D4A2C699884D73A375A67F7624EF7C6B3C0F160647B67414DCE655E35B538041E649EE3FAEF896783AB194",
       "667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA"
       "9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C",
       "41CB0779B4BDB85D47846725FBEC3C9430FAB46CC8DC5060855CC9BDA0AA2942E0308312916B8ED2960E4BD55A7448FC",
       "E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571"
       "DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C",
       "11187331C279962D93D604243FD592CB9D0A926F422E47187521287E7156C5C4D603135569B9E9D09CF5D4A270F59746"},
  };
  for (const V& v : vs) {
    auto i = DhKey::FromPrivate(v.group, Unhex(v.i), Unhex(v.gi));
    auto r = DhKey::FromPrivate(v.group, Unhex(v.r), Unhex(v.gr));
    ASSERT_TRUE(i.ok()) << i.status();
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(i->public_value(), Unhex(v.gi));
    auto s1 = i->Derive(Unhex(v.gr));
    auto s2 = r->Derive(Unhex(v.gi));
    ASSERT_TRUE(s1.ok() && s2.ok()) << s1.status() << s2.status();
    EXPECT_EQ(*s1, Unhex(v.gir));  // RFC 5903 section 7: the shared secret is the x coordinate
    EXPECT_EQ(*s2, Unhex(v.gir));
    // A point not on the curve: flip one bit of y.
    Bytes bad = Unhex(v.gr);
    bad.back() ^= 1;
    EXPECT_FALSE(i->Derive(bad).ok());
    EXPECT_FALSE(i->Derive(Bytes(bad.size(), 0)).ok());  // (0,0) is not on either curve
  }
}

// MODP-2048 (RFC 3526 group 14): both sides agree; 1 < y < p-1 enforced.
TEST(IkeCrypto, Modp2048AgreementAndRangeCheck) {
  auto a = DhKey::Generate(dh::kModp2048);
  auto b = DhKey::Generate(dh::kModp2048);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->public_value().size(), 256u);
  auto s1 = a->Derive(b->public_value());
  auto s2 = b->Derive(a->public_value());
  ASSERT_TRUE(s1.ok() && s2.ok()) << s1.status();
  EXPECT_EQ(s1->size(), 256u);  // padded to |p| (RFC 7296 2.14 uses the full-length value)
  EXPECT_EQ(*s1, *s2);
  Bytes one(256, 0);
  one.back() = 1;
  EXPECT_FALSE(a->Derive(one).ok());
  EXPECT_FALSE(a->Derive(Bytes(256, 0)).ok());
  EXPECT_FALSE(a->Derive(Bytes(256, 0xff)).ok());  // > p
  // p - 1 (RFC 3526 prime ends in ...FFFFFFFF, so p-1 ends in ...FE).
  Bytes pm1 = Unhex(
      "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
      "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
      "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
      "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B"
      "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA0510"
      "15728E5A8AACAA68FFFFFFFFFFFFFFFE");
  EXPECT_FALSE(a->Derive(pm1).ok());
}

TEST(IkeCrypto, EveryGroupGeneratesAndAgrees) {
  for (uint16_t g : {dh::kModp2048, dh::kEcp256, dh::kEcp384, dh::kCurve25519}) {
    auto a = DhKey::Generate(g);
    auto b = DhKey::Generate(g);
    ASSERT_TRUE(a.ok() && b.ok()) << g;
    EXPECT_EQ(*a->Derive(b->public_value()), *b->Derive(a->public_value())) << g;
  }
}

// AES-GCM: "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega (NIST submission),
// test cases 4 (AES-128) and 16 (AES-256). Split as RFC 5282 does: salt = first 4 nonce bytes.
TEST(IkeCrypto, AesGcmMcGrewViega) {
  Bytes p = Unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e24"
                  "49a6b525b16aedf5aa0de657ba637b39");
  Bytes a = Unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
  Bytes iv = Unhex("cafebabefacedbaddecaf888");
  auto c4 = GcmSeal(Unhex("feffe9928665731c6d6a8f9467308308"), iv, a, p);
  ASSERT_TRUE(c4.ok());
  EXPECT_EQ(Hex(*c4),
            "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c7d8f6a5aac84aa05"
            "1ba30b396a0aac973d58e091"
            "5bc94fbc3221a5db94fae95ae7121a47");
  auto c16 = GcmSeal(Unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"), iv, a, p);
  ASSERT_TRUE(c16.ok());
  EXPECT_EQ(Hex(*c16),
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838"
            "c5f61e6393ba7a0abcc9f662"
            "76fc6ece0f4e1768cddf8853bb2d551b");
  auto back = GcmOpen(Unhex("feffe9928665731c6d6a8f9467308308"), iv, a, *c4);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, p);
  Bytes tampered = *c4;
  tampered[0] ^= 1;
  EXPECT_FALSE(GcmOpen(Unhex("feffe9928665731c6d6a8f9467308308"), iv, a, tampered).ok());
}

// RFC 3602 section 4, cases #1 and #2 (AES-128-CBC).
TEST(IkeCrypto, AesCbcRfc3602) {
  auto c1 = CbcEncryptRaw(Unhex("06a9214036b8a15b512e03d534120006"), Unhex("3dafba429d9eb430b422da802c9fac41"),
                          Str("Single block msg"));
  ASSERT_TRUE(c1.ok());
  EXPECT_EQ(Hex(*c1), "e353779c1079aeb82708942dbe77181a");
  Bytes p2;
  for (int i = 0; i < 32; ++i) p2.push_back(i);
  auto c2 = CbcEncryptRaw(Unhex("c286696d887c9aa0611bbb3e2025a45a"), Unhex("562e17996d093d28ddb3ba695a2e6f58"), p2);
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(Hex(*c2), "d296cd94c2cccf8a3a863028b5e1dc0a7586602d253cfff91b8266bea6d61ab1");
  EXPECT_EQ(*CbcDecryptRaw(Unhex("c286696d887c9aa0611bbb3e2025a45a"), Unhex("562e17996d093d28ddb3ba695a2e6f58"), *c2), p2);
}

// Every cipher/integrity pair protects and unprotects an SK message, and refuses tampering.
TEST(IkeCrypto, SkPayloadEveryPair) {
  struct S {
    uint16_t encr, bits, integ;
  } suites[] = {{encr::kAesGcm16, 128, integ::kNone},          {encr::kAesGcm16, 256, integ::kNone},
                {encr::kAesCbc, 128, integ::kHmacSha256_128},  {encr::kAesCbc, 256, integ::kHmacSha384_192},
                {encr::kAesCbc, 256, integ::kHmacSha512_256}};
  for (const S& s : suites) {
    auto c = SkCipher::Create(s.encr, s.bits, s.integ);
    ASSERT_TRUE(c.ok());
    Bytes ek(c->encr_key_len(), 0x11), ak(c->integ_key_len(), 0x22);
    Header h;
    h.spi_i = 1;
    h.spi_r = 2;
    h.exchange = ExchangeType::kInformational;
    h.message_id = 7;
    std::vector<Payload> inner = {MakeNotify(NotifyType::kInitialContact)};
    Bytes chain = EncodeChain(inner);
    auto dg = c->Protect(h, PayloadType::kNotify, chain, ek, ak);
    ASSERT_TRUE(dg.ok()) << dg.status();
    auto m = DecodeMessage(*dg);
    ASSERT_TRUE(m.ok()) << m.status();
    auto* sk = m->Get<SkPayload>(PayloadType::kSk);
    ASSERT_NE(sk, nullptr);
    auto pt = c->Unprotect(*dg, sk->body.size(), ek, ak);
    ASSERT_TRUE(pt.ok()) << pt.status();
    EXPECT_EQ(*pt, chain);
    for (size_t pos : {size_t{5}, size_t{30}, dg->size() - 1}) {
      Bytes bad = *dg;
      bad[pos] ^= 0x40;
      EXPECT_FALSE(c->Unprotect(bad, sk->body.size(), ek, ak).ok()) << "pos " << pos;
    }
  }
}

}  // namespace
}  // namespace ipfleet::ike
