// e2e-bundle-injector: a stand-in controller for the lab test's step 7. It serves AgentService on
// the controller's address with the controller's own TLS certificate (so the agent reconnects to it
// as to the real one), and on the first session pushes
//   1. a TAMPERED copy of a real bundle: its version raised by 1000 (what a replay attacker wants)
//      while the signature still covers the original bytes;
//   2. an OLDER bundle: an earlier, genuinely signed version for this host.
// It prints every ack and exits 0 only when both were refused with the expected reasons
// ("bad signature", "rollback"). The running tunnels are judged by the test itself (ping, ip xfrm).
//
//   e2e-bundle-injector --listen 192.0.2.1:7443 --cert C --key K --ca CA
//       --host h2 --tamper-from NEWEST.bundle --older OLDER.bundle [--timeout 60]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>
#include <grpcpp/grpcpp.h>

#include "ipfleet/v1/agent_service.grpc.pb.h"
#include "ipfleet/v1/types.pb.h"

namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  return true;
}

class Injector final : public ipfleet::v1::AgentService::Service {
 public:
  Injector(std::string host, ipfleet::v1::SignedBundle tampered, ipfleet::v1::SignedBundle older)
      : host_(std::move(host)), tampered_(std::move(tampered)), older_(std::move(older)) {}

  grpc::Status Enroll(grpc::ServerContext*, const ipfleet::v1::EnrollRequest*, ipfleet::v1::EnrollResponse*) override {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "test stand-in controller");
  }

  grpc::Status Session(grpc::ServerContext*,
                       grpc::ServerReaderWriter<ipfleet::v1::ControllerMessage, ipfleet::v1::AgentMessage>* stream) override {
    ipfleet::v1::AgentMessage in;
    if (!stream->Read(&in) || !in.has_hello()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "no hello");
    std::printf("injector: hello host=%s bundle_version=%llu\n", in.hello().host().c_str(),
                static_cast<unsigned long long>(in.hello().bundle_version()));
    std::fflush(stdout);
    if (in.hello().host() != host_ || done_) {
      // Another agent reconnecting meanwhile: hold its session open, push nothing.
      while (!done_ && stream->Read(&in)) {
      }
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "test stand-in controller");
    }
    const ipfleet::v1::SignedBundle* order[] = {&tampered_, &older_};
    const char* expect[] = {"bad signature", "rollback"};
    int refused_as_expected = 0;
    for (int i = 0; i < 2; ++i) {
      ipfleet::v1::ControllerMessage m;
      *m.mutable_bundle() = *order[i];
      if (!stream->Write(m)) break;
      // Wait for this bundle's ack; health reports and results in between are ignored.
      bool acked = false;
      while (stream->Read(&in)) {
        if (!in.has_bundle_ack()) continue;
        const auto& a = in.bundle_ack();
        std::printf("injector: ack version=%llu applied=%d error=\"%s\"\n", static_cast<unsigned long long>(a.version()),
                    a.applied() ? 1 : 0, a.error().c_str());
        std::fflush(stdout);
        if (!a.applied() && a.error().rfind(expect[i], 0) == 0) ++refused_as_expected;
        acked = true;
        break;
      }
      if (!acked) break;
    }
    result_ = refused_as_expected == 2 ? 0 : 1;
    done_ = true;
    return grpc::Status::OK;
  }

  bool done() const { return done_; }
  int result() const { return result_; }

 private:
  std::string host_;
  ipfleet::v1::SignedBundle tampered_, older_;
  std::atomic<bool> done_{false};
  std::atomic<int> result_{1};
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"stand-in controller pushing a tampered and an older bundle (lab test)"};
  std::string host, listen, cert, key, ca, tamper_from, older;
  int timeout = 60;
  app.add_option("--listen", listen)->required();
  app.add_option("--host", host, "the agent to push to (others are held without bundles)")->required();
  app.add_option("--cert", cert)->required();
  app.add_option("--key", key)->required();
  app.add_option("--ca", ca)->required();
  app.add_option("--tamper-from", tamper_from)->required();
  app.add_option("--older", older)->required();
  app.add_option("--timeout", timeout);
  CLI11_PARSE(app, argc, argv);

  std::string cert_pem, key_pem, ca_pem, newest_raw, older_raw;
  if (!ReadFile(cert, &cert_pem) || !ReadFile(key, &key_pem) || !ReadFile(ca, &ca_pem) ||
      !ReadFile(tamper_from, &newest_raw) || !ReadFile(older, &older_raw)) {
    std::fprintf(stderr, "injector: cannot read an input file\n");
    return 2;
  }
  ipfleet::v1::SignedBundle tampered, old;
  ipfleet::v1::PolicyBundle pb;
  if (!tampered.ParseFromString(newest_raw) || !pb.ParseFromString(tampered.bundle()) || !old.ParseFromString(older_raw)) {
    std::fprintf(stderr, "injector: a bundle file does not parse\n");
    return 2;
  }
  pb.set_version(pb.version() + 1000);
  tampered.set_bundle(pb.SerializeAsString());  // the signature still covers the original bytes

  Injector service(host, tampered, old);
  grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  tls.pem_root_certs = ca_pem;
  tls.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort(listen, grpc::SslServerCredentials(tls), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "injector: cannot listen on %s\n", listen.c_str());
    return 2;
  }
  std::printf("injector: listening on %s\n", listen.c_str());
  std::fflush(stdout);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);
  while (!service.done() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (!service.done()) {
    std::printf("injector: no agent session within %d s\n", timeout);
    return 1;
  }
  std::printf("injector: %s\n", service.result() == 0 ? "both bundles refused as expected" : "UNEXPECTED acks");
  return service.result();
}
