// The real-kernel lab: one VM boot (deploy/lab/run.sh) runs tests/kernel/lab_checks.sh, which
// installs SAs and policies with ipfleet-xfrm and judges with ping, `ip -s xfrm state` and
// /proc/net/xfrm_stat. Each TEST asserts one of its checks, with the script's own detail.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace {

struct LabRun {
  bool skipped = false;
  std::string skip_reason;
  int status = -1;
  std::string output;
};

const LabRun& LabResult() {
  static LabRun run = [] {
    LabRun r;
    if (geteuid() != 0) {
      r.skipped = true;
      r.skip_reason = "needs root (qemu with 9p, namespaces inside)";
      return r;
    }
    if (std::system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
      r.skipped = true;
      r.skip_reason = "qemu-system-x86_64 missing (deploy/install-deps.sh)";
      return r;
    }
    // The VM reads binaries through 9p while it runs: use a private copy of the tool so that a
    // rebuild on the host meanwhile cannot swap it under the running checks.
    char dir[] = "/tmp/ipfleet-lab-tool.XXXXXX";
    if (mkdtemp(dir) == nullptr) return r;
    const std::string tool = std::string(dir) + "/ipfleet-xfrm";
    std::error_code ec;
    std::filesystem::copy_file(IPFLEET_XFRM_TOOL, tool, ec);
    if (ec) return r;
    std::string cmd = std::string("cd ") + IPFLEET_SOURCE_DIR +
                      " && deploy/lab/run.sh --timeout 780 --hosts 4 -- bash tests/kernel/lab_checks.sh " +
                      tool + " 2>&1";
    FILE* f = popen(cmd.c_str(), "r");
    if (f == nullptr) return r;
    std::array<char, 4096> buf;
    ssize_t n;
    // read(), not fread(): forward progress as it comes (ctest -V), not in 4 KiB blocks.
    while ((n = read(fileno(f), buf.data(), buf.size())) > 0) {
      r.output.append(buf.data(), static_cast<size_t>(n));
      fwrite(buf.data(), 1, static_cast<size_t>(n), stderr);
    }
    int rc = pclose(f);
    r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    std::filesystem::remove_all(dir, ec);
    return r;
  }();
  return run;
}

// The line "CHECK <name> PASS|FAIL detail", or "" when the check never reported.
std::string CheckLine(const std::string& name) {
  const std::string& out = LabResult().output;
  std::string key = "CHECK " + name + " ";
  size_t pos = out.find(key);
  if (pos == std::string::npos) return "";
  size_t end = out.find('\n', pos);
  return out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

void ExpectPass(const std::string& name) {
  if (LabResult().skipped) GTEST_SKIP() << LabResult().skip_reason;
  std::string line = CheckLine(name);
  ASSERT_FALSE(line.empty()) << "check " << name << " did not report; lab output:\n" << LabResult().output;
  EXPECT_NE(line.find(" PASS "), std::string::npos) << line;
}

TEST(KernelLab, TunnelModeGcmPingCountedBySa) { ExpectPass("tunnel_gcm"); }
TEST(KernelLab, TransportModeCbcHmacPingCountedBySa) { ExpectPass("transport_cbc_hmac"); }
TEST(KernelLab, TunnelModeIpv6CbcSha512) { ExpectPass("tunnel_v6_cbc_sha512"); }
TEST(KernelLab, WrongKeyShowsIntegrityFailuresAndNoDelivery) { ExpectPass("wrong_key"); }
TEST(KernelLab, NatTraversalEspInUdpWithEsn) { ExpectPass("natt_esn"); }
TEST(KernelLab, SoftAndHardExpireEventsByTimeAndPackets) { ExpectPass("lifetimes"); }
TEST(KernelLab, FlushOwnedLeavesForeignSaAndPolicy) { ExpectPass("flush_owned"); }
TEST(KernelLab, WholeRunSucceeded) {
  if (LabResult().skipped) GTEST_SKIP() << LabResult().skip_reason;
  EXPECT_EQ(LabResult().status, 0) << LabResult().output;
}

}  // namespace
