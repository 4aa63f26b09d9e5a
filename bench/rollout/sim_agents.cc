#include "sim_agents.h"

#include <unistd.h>

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>

#include "ipfleet/ca/keys.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"

namespace ipfleet::bench {

std::string HostName(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "h%05d", i);
  return buf;
}
std::string HostAddress(int i) { return "10." + std::to_string(i / 65536 + 64) + "." + std::to_string(i / 256 % 256) + "." + std::to_string(i % 256); }

std::string MeshFleetYaml(int hosts, int group, int round) {
  std::string yaml;
  if (round > 1) {
    yaml = "proposals:\n  default: {ike: {encryption: [" + std::string(round % 2 ? "aes128gcm16" : "aes256gcm16") +
           "], prf: [prfsha256], dh_groups: [curve25519]}, esp: {encryption: [aes128gcm16]}}\n";
  }
  yaml += "meshes:\n";
  for (int g = 0; g * group < hosts; ++g) {
    yaml += "  - {name: g" + std::to_string(g) + ", select: {group: g" + std::to_string(g) + "}}\n";
  }
  return yaml;
}

absl::Status MakeIdentities(const ca::CertificateAuthority& ca, int hosts, std::vector<Identity>* ids,
                            std::vector<inventory::Certificate>* certs) {
  for (int i = 0; i < hosts; ++i) {
    IPFLEET_ASSIGN_OR_RETURN(auto key, ca::GenerateKey(ca::KeyType::kEcdsaP256));
    ca::IssueRequest req;
    req.common_name = HostName(i);
    req.ips = {HostAddress(i)};
    req.profile = ca::Profile::kHost;
    IPFLEET_ASSIGN_OR_RETURN(auto issued, ca.IssueForKey(key.get(), req));
    IPFLEET_ASSIGN_OR_RETURN(std::string key_pem, ca::PrivateKeyToPem(key.get()));
    ids->push_back({HostName(i), std::move(key_pem), issued.pem});
    certs->push_back(controller::Pki::ToRecord(issued, req, "host"));
  }
  return absl::OkStatus();
}

namespace {

int g_total_agents = 0;  // for the progress lines

class SimAgent final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::ControllerMessage> {
 public:
  SimAgent(const Identity& id, const std::string& ca_pem, const std::string& target, std::atomic<int>* connected,
           std::atomic<int>* acked)
      : id_(id), connected_(connected), acked_(acked) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = ca_pem;
    o.pem_private_key = id.key_pem;
    o.pem_cert_chain = id.cert_pem;
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // one TCP+TLS connection per agent, like real hosts
    stub_ = v1::AgentService::NewStub(grpc::CreateCustomChannel(target, grpc::SslCredentials(o), args));
  }
  void Go() {
    stub_->async()->Session(&ctx_, this);
    out_.mutable_hello()->set_host(id_.name);
    out_.mutable_hello()->set_agent_version("bench");
    writing_ = true;
    StartWrite(&out_);
    StartRead(&in_);
    AddHold();
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) return;
    if (!said_hello_) {
      said_hello_ = true;
      connected_->fetch_add(1);
    }
    if (!queue_.empty()) {
      out_ = std::move(queue_.front());
      queue_.erase(queue_.begin());
      writing_ = true;
      StartWrite(&out_);
    }
  }
  void OnReadDone(bool ok) override {
    if (!ok) {
      RemoveHold();
      return;
    }
    if (in_.has_bundle()) {
      v1::PolicyBundle b;
      b.ParseFromString(in_.bundle().bundle());
      v1::AgentMessage ack;
      ack.mutable_bundle_ack()->set_version(b.version());
      ack.mutable_bundle_ack()->set_applied(true);
      v1::AgentMessage health;
      health.mutable_health()->set_host(id_.name);
      health.mutable_health()->set_bundle_version(b.version());
      for (const auto& t : b.tunnels()) {
        auto* th = health.mutable_health()->add_tunnels();
        th->set_tunnel(t.name());
        th->set_up(true);
      }
      Enqueue(std::move(ack));
      Enqueue(std::move(health));
      int n = acked_->fetch_add(1) + 1;
      if (n == 1 || n == g_total_agents / 2 || n == g_total_agents) {
        std::printf("agents bundles_received=%d mono=%.3f agents_cpu_seconds=%.2f\n", n, Mono(), CpuSeconds());
      }
    }
    StartRead(&in_);
  }
  void OnDone(const grpc::Status&) override { done_ = true; }
  bool done() const { return done_; }

 private:
  void Enqueue(v1::AgentMessage m) {
    std::lock_guard lock(mu_);
    if (writing_) {
      queue_.push_back(std::move(m));
      return;
    }
    out_ = std::move(m);
    writing_ = true;
    StartWrite(&out_);
  }

  Identity id_;
  std::atomic<int>* connected_;
  std::atomic<int>* acked_;
  std::unique_ptr<v1::AgentService::Stub> stub_;
  grpc::ClientContext ctx_;
  std::mutex mu_;
  v1::AgentMessage out_;
  std::vector<v1::AgentMessage> queue_;
  v1::ControllerMessage in_;
  bool writing_ = false;
  bool said_hello_ = false;
  std::atomic<bool> done_{false};
};

}  // namespace

void RunAgents(const std::vector<Identity>& ids, const std::string& ca_pem, const std::vector<std::string>& targets,
               int go_fd, std::atomic<int>* received) {
  char c;
  if (::read(go_fd, &c, 1) != 1) ::_exit(2);  // parent inserted the hosts
  // Same reason as in Controller::Start: abseil's debug deadlock detector costs O(live mutexes).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::atomic<int> connected{0}, own_acked{0};
  std::atomic<int>& acked = received ? *received : own_acked;
  g_total_agents = static_cast<int>(ids.size());
  std::vector<std::unique_ptr<SimAgent>> agents;
  std::vector<size_t> target_of(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    target_of[i] = i % targets.size();
    agents.push_back(std::make_unique<SimAgent>(ids[i], ca_pem, targets[target_of[i]], &connected, &acked));
    agents.back()->Go();
    if (agents.size() % 200 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));  // pace the handshakes
  }
  // Runs until the parent kills us. A session that ended (a handshake that timed out under load,
  // a controller replica that died) is opened again on the next target, as a real agent would.
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (size_t i = 0; i < agents.size(); ++i) {
      if (!agents[i]->done()) continue;
      target_of[i] = (target_of[i] + 1) % targets.size();
      agents[i] = std::make_unique<SimAgent>(ids[i], ca_pem, targets[target_of[i]], &connected, &acked);
      agents[i]->Go();
    }
  }
}

}  // namespace ipfleet::bench
