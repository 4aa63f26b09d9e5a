// FakeXfrm must behave like the kernel as far as its users can tell: the IKE engine and the
// agent are tested against it.
#include "ipfleet/kernel/fake_xfrm.h"

#include <poll.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ipfleet::kernel {
namespace {

using ::testing::HasSubstr;

IpAddress A(const char* s) { return IpAddress::MustParse(s); }
IpPrefix P(const char* s) { return IpPrefix::MustParse(s); }

SaParams Sa(uint32_t spi, uint32_t reqid = kOwnedReqidFirst + 1) {
  SaParams sa;
  sa.src = A("192.0.2.1");
  sa.dst = A("192.0.2.2");
  sa.spi = spi;
  sa.reqid = reqid;
  sa.aead = AeadAlgo{"rfc4106(gcm(aes))", std::vector<uint8_t>(20, 7), 128};
  return sa;
}

PolicyParams Policy(const char* src, const char* dst, Direction dir,
                    uint32_t reqid = kOwnedReqidFirst + 1) {
  PolicyParams p;
  p.selector.src = P(src);
  p.selector.dst = P(dst);
  p.dir = dir;
  PolicyTemplate t;
  t.src = A("192.0.2.1");
  t.dst = A("192.0.2.2");
  t.reqid = reqid;
  p.templates.push_back(t);
  return p;
}

TEST(FakeXfrm, DuplicateAddIsAlreadyExistsAndNamesTheSpi) {
  FakeXfrm x;
  ASSERT_TRUE(x.AddSa(Sa(0x1000)).ok());
  auto st = x.AddSa(Sa(0x1000));
  EXPECT_TRUE(absl::IsAlreadyExists(st)) << st;
  EXPECT_THAT(std::string(st.message()),
              HasSubstr("XFRM_MSG_NEWSA spi=0x00001000 dst=192.0.2.2 proto=esp: File exists"));
}

TEST(FakeXfrm, MissingDeleteUpdateQueryAreNotFound) {
  FakeXfrm x;
  EXPECT_TRUE(absl::IsNotFound(x.DeleteSa(Sa(1).id())));
  EXPECT_TRUE(absl::IsNotFound(x.UpdateSa(Sa(1))));
  EXPECT_TRUE(absl::IsNotFound(x.QuerySa(Sa(1).id()).status()));
  auto st = x.DeletePolicy(Policy("10.0.0.0/8", "10.1.0.0/16", Direction::kOut).id());
  EXPECT_TRUE(absl::IsNotFound(st)) << st;
  EXPECT_THAT(std::string(st.message()), HasSubstr("XFRM_MSG_DELPOLICY dir=out 10.0.0.0/8"));
}

TEST(FakeXfrm, InvalidSaIsRejected) {
  FakeXfrm x;
  SaParams both = Sa(5);
  both.crypt = CryptAlgo{"cbc(aes)", std::vector<uint8_t>(16, 1)};
  EXPECT_TRUE(absl::IsInvalidArgument(x.AddSa(both)));
  SaParams none = Sa(6);
  none.aead.reset();
  EXPECT_TRUE(absl::IsInvalidArgument(x.AddSa(none)));
  SaParams mixed = Sa(7);
  mixed.dst = A("2001:db8::1");
  EXPECT_TRUE(absl::IsInvalidArgument(x.AddSa(mixed)));
}

TEST(FakeXfrm, AllocSpiCreatesLarvalStateThatUpdateCompletes) {
  FakeXfrm x;
  SpiRequest r;
  r.src = A("192.0.2.2");
  r.dst = A("192.0.2.1");
  r.reqid = kOwnedReqidFirst + 9;
  r.min_spi = 0x2000;
  r.max_spi = 0x2003;
  std::set<uint32_t> spis;
  for (int i = 0; i < 4; ++i) {
    auto spi = x.AllocSpi(r);
    ASSERT_TRUE(spi.ok()) << spi.status();
    EXPECT_GE(*spi, 0x2000u);
    EXPECT_LE(*spi, 0x2003u);
    spis.insert(*spi);
  }
  EXPECT_EQ(spis.size(), 4u);  // like the kernel: a fresh larval state each time
  EXPECT_TRUE(absl::IsResourceExhausted(x.AllocSpi(r).status()));
  SaParams sa = Sa(*spis.begin(), r.reqid);
  sa.src = r.src;
  sa.dst = r.dst;
  auto larval = x.QuerySa(sa.id());
  ASSERT_TRUE(larval.ok());
  EXPECT_FALSE(larval->params.aead.has_value());
  EXPECT_TRUE(absl::IsAlreadyExists(x.AddSa(sa)));  // must be UpdateSa, as in the kernel
  ASSERT_TRUE(x.UpdateSa(sa).ok());
  EXPECT_TRUE(x.QuerySa(sa.id())->params.aead.has_value());
}

TEST(FakeXfrm, CountersAreSettableAndQueried) {
  FakeXfrm x;
  ASSERT_TRUE(x.AddSa(Sa(0x10)).ok());
  SaCounters c;
  c.bytes = 1234;
  c.packets = 12;
  c.integrity_failures = 3;
  ASSERT_TRUE(x.SetCounters(Sa(0x10).id(), c).ok());
  auto q = x.QuerySa(Sa(0x10).id());
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->counters, c);
  EXPECT_TRUE(absl::IsNotFound(x.SetCounters(Sa(0x11).id(), c)));
}

TEST(FakeXfrm, PoliciesGetOwnedIndicesWithTheDirectionInTheLowBits) {
  FakeXfrm x;
  ASSERT_TRUE(x.AddPolicy(Policy("10.0.0.0/8", "10.1.0.0/16", Direction::kFwd)).ok());
  auto dump = x.DumpPolicies();
  ASSERT_TRUE(dump.ok());
  ASSERT_EQ(dump->size(), 1u);
  uint32_t index = (*dump)[0].params.index;
  EXPECT_TRUE(IsOwnedPolicyIndex(index));
  EXPECT_EQ(index & 7, 2u);
  // Update keeps the index, a duplicate add fails.
  PolicyParams changed = Policy("10.0.0.0/8", "10.1.0.0/16", Direction::kFwd);
  changed.priority = 99;
  EXPECT_TRUE(absl::IsAlreadyExists(x.AddPolicy(changed)));
  ASSERT_TRUE(x.UpdatePolicy(changed).ok());
  dump = x.DumpPolicies();
  EXPECT_EQ((*dump)[0].params.index, index);
  EXPECT_EQ((*dump)[0].params.priority, 99u);
}

TEST(FakeXfrm, BatchResultsMapToTheirOperations) {
  FakeXfrm x;
  std::vector<BatchOp> ops = {
      AddSa{Sa(1)},
      AddSa{Sa(1)},                // duplicate
      DeleteSa{Sa(2).id()},        // missing
      AddPolicy{Policy("10.0.0.0/8", "10.1.0.0/16", Direction::kOut)},
      DeletePolicy{Policy("10.9.0.0/16", "10.1.0.0/16", Direction::kOut).id()},  // missing
      AddSa{Sa(3)},
  };
  auto r = x.Apply(ops);
  ASSERT_EQ(r.size(), ops.size());
  EXPECT_TRUE(r[0].ok());
  EXPECT_TRUE(absl::IsAlreadyExists(r[1]));
  EXPECT_TRUE(absl::IsNotFound(r[2]));
  EXPECT_TRUE(r[3].ok());
  EXPECT_TRUE(absl::IsNotFound(r[4]));
  EXPECT_TRUE(r[5].ok());
  EXPECT_EQ(x.sa_count(), 2u);
}

TEST(FakeXfrm, FailNextInjectsOneFailure) {
  FakeXfrm x;
  x.FailNext("AddSa", absl::UnavailableError("boom"));
  EXPECT_TRUE(absl::IsUnavailable(x.AddSa(Sa(1))));
  EXPECT_TRUE(x.AddSa(Sa(1)).ok());
}

TEST(FakeXfrm, InjectedEventsMakeTheFdReadableAndAreDispatched) {
  FakeXfrm x;
  EXPECT_EQ(x.event_fd(), -1);
  std::vector<XfrmEvent> got;
  ASSERT_TRUE(x.Subscribe([&](const XfrmEvent& e) { got.push_back(e); }).ok());
  ASSERT_GE(x.event_fd(), 0);
  pollfd pfd{x.event_fd(), POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 0), 0);  // nothing pending
  AcquireEvent acq;
  acq.templ.reqid = kOwnedReqidFirst + 4;
  x.InjectEvent(acq);
  ASSERT_TRUE(x.AddSa(Sa(0x77)).ok());
  ASSERT_TRUE(x.ExpireSa(Sa(0x77).id(), /*hard=*/true).ok());
  EXPECT_EQ(poll(&pfd, 1, 0), 1);
  auto n = x.Dispatch();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2u);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(std::get<AcquireEvent>(got[0]).templ.reqid, kOwnedReqidFirst + 4);
  EXPECT_TRUE(std::get<ExpireEvent>(got[1]).hard);
  EXPECT_EQ(std::get<ExpireEvent>(got[1]).id.spi, 0x77u);
  EXPECT_EQ(x.sa_count(), 0u);  // a hard expire removes the SA
  EXPECT_EQ(poll(&pfd, 1, 0), 0);
}

TEST(FakeXfrm, FlushOwnedLeavesForeignState) {
  FakeXfrm x;
  ASSERT_TRUE(x.AddSa(Sa(1)).ok());
  ASSERT_TRUE(x.AddPolicy(Policy("10.0.0.0/8", "10.1.0.0/16", Direction::kOut)).ok());
  x.InsertForeignSa(Sa(2, /*reqid=*/5));
  PolicyParams foreign = Policy("203.0.113.0/24", "198.51.100.0/24", Direction::kOut, 5);
  foreign.index = 0x10;
  x.InsertForeignPolicy(foreign);
  auto r = x.FlushOwned();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sas_deleted, 1u);
  EXPECT_EQ(r->policies_deleted, 1u);
  EXPECT_EQ(r->foreign_sas_kept, 1u);
  EXPECT_EQ(r->foreign_policies_kept, 1u);
  EXPECT_TRUE(x.QuerySa(Sa(2, 5).id()).ok());
  EXPECT_EQ(x.policy_count(), 1u);
}

TEST(FakeXfrm, ReconcileRemovesOwnedLeftoversAddsMissingReplacesChanged) {
  FakeXfrm x;
  ASSERT_TRUE(x.AddSa(Sa(1)).ok());  // leftover
  ASSERT_TRUE(x.AddSa(Sa(2)).ok());  // kept as is
  SaParams changed = Sa(3);
  ASSERT_TRUE(x.AddSa(changed).ok());
  changed.aead->key.assign(20, 9);   // desired with another key
  x.InsertForeignSa(Sa(4, 5));       // foreign: untouched
  ASSERT_TRUE(x.AddPolicy(Policy("10.0.0.0/8", "10.1.0.0/16", Direction::kOut)).ok());  // leftover
  PolicyParams keep = Policy("10.2.0.0/16", "10.3.0.0/16", Direction::kIn);
  ASSERT_TRUE(x.AddPolicy(keep).ok());

  DesiredState want;
  want.sas = {Sa(2), changed, Sa(5)};
  want.policies = {keep, Policy("10.4.0.0/16", "10.5.0.0/16", Direction::kOut)};
  auto r = x.Reconcile(want);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->sas_removed, 1u);
  EXPECT_EQ(r->sas_replaced, 1u);
  EXPECT_EQ(r->sas_added, 1u);
  EXPECT_EQ(r->policies_removed, 1u);
  EXPECT_EQ(r->policies_added, 1u);
  EXPECT_EQ(r->policies_replaced, 0u);
  EXPECT_TRUE(absl::IsNotFound(x.QuerySa(Sa(1).id()).status()));
  EXPECT_EQ(x.QuerySa(Sa(3).id())->params.aead->key, std::vector<uint8_t>(20, 9));
  EXPECT_TRUE(x.QuerySa(Sa(4, 5).id()).ok());
  EXPECT_EQ(x.sa_count(), 4u);
  EXPECT_EQ(x.policy_count(), 2u);

  // A second pass has nothing to do.
  auto again = x.Reconcile(want);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->sas_added + again->sas_removed + again->sas_replaced + again->policies_added +
                again->policies_removed + again->policies_replaced,
            0u);
}

TEST(FakeXfrm, ReconcileRefusesUnownedDesiredState) {
  FakeXfrm x;
  DesiredState want;
  want.sas = {Sa(1, /*reqid=*/7)};
  EXPECT_TRUE(absl::IsInvalidArgument(x.Reconcile(want).status()));
}

TEST(Types, ParseAndPrint) {
  EXPECT_EQ(IpPrefix::MustParse("192.0.2.0/24").ToString(), "192.0.2.0/24");
  EXPECT_EQ(IpPrefix::MustParse("2001:db8::1").ToString(), "2001:db8::1/128");
  EXPECT_FALSE(IpPrefix::Parse("192.0.2.0/33").ok());
  EXPECT_FALSE(IpAddress::Parse("nope").ok());
  EXPECT_TRUE(IsOwnedReqid(0x1F000000));
  EXPECT_FALSE(IsOwnedReqid(0x20000000));
  EXPECT_FALSE(IsOwnedReqid(1));
}

}  // namespace
}  // namespace ipfleet::kernel
