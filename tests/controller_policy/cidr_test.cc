// Prefix text: the hand-written IPv4 formatting must print exactly what inet_ntop prints.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <string>

#include "ipfleet/policy/cidr.h"

namespace ipfleet::testing {
namespace {

TEST(CidrTest, Ipv4TextMatchesInetNtopForEveryDigitCount) {
  for (unsigned v : {0u, 9u, 10u, 99u, 100u, 255u}) {
    for (int len : {0, 9, 10, 32}) {
      policy::Prefix p;
      p.family = AF_INET;
      p.bytes = {static_cast<uint8_t>(v), static_cast<uint8_t>(255 - v), static_cast<uint8_t>(v / 2), 7};
      p.length = len;
      char buf[INET_ADDRSTRLEN] = {};
      ASSERT_NE(inet_ntop(AF_INET, p.bytes.data(), buf, sizeof(buf)), nullptr);
      EXPECT_EQ(p.AddressToString(), std::string(buf));
      EXPECT_EQ(p.ToString(), std::string(buf) + "/" + std::to_string(len));
    }
  }
}

TEST(CidrTest, Ipv6AddressAndPrefixText) {
  auto p = policy::ParsePrefix("2001:db8::/64");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->ToString(), "2001:db8::/64");
  EXPECT_EQ(p->AddressToString(), "2001:db8::");
}

}  // namespace
}  // namespace ipfleet::testing
