#include "client.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ipfleet::cli {
namespace {

bool ReadFile(const std::string& path, std::string* out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

int ExitCodeFor(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return kOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE: return kUsage;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED: return kUnreachable;
    case grpc::StatusCode::NOT_FOUND: return kNotFound;
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ABORTED: return kConflict;
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED: return kDenied;
    case grpc::StatusCode::UNIMPLEMENTED: return kUnsupported;
    default: return kError;
  }
}

Client::Client(const GlobalOptions& g) : g_(g) {
  std::string target = g.controller;
  if (target.empty()) {
    if (const char* env = std::getenv("IPFLEET_CONTROLLER"); env && *env) target = env;
  }
  if (target.empty()) target = "unix:" + g.data_dir + "/admin.sock";
  target_ = target;
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (target.rfind("unix:", 0) == 0) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions tls;
    std::string ca_path = g.tls_ca.empty() ? g.data_dir + "/ca/ca.crt" : g.tls_ca;
    if (!ReadFile(ca_path, &tls.pem_root_certs)) {
      setup_error_ = "cannot read the fleet CA certificate " + ca_path + "; pass --tls-ca FILE";
    }
    if (!g.tls_cert.empty() || !g.tls_key.empty()) {
      if (!ReadFile(g.tls_cert, &tls.pem_cert_chain) || !ReadFile(g.tls_key, &tls.pem_private_key)) {
        setup_error_ = "cannot read the admin client certificate/key (--tls-cert " + g.tls_cert + ", --tls-key " +
                       g.tls_key + ")";
      }
    }
    creds = grpc::SslCredentials(tls);
  }
  stub_ = v1::AdminService::NewStub(grpc::CreateChannel(target, creds));
}

std::unique_ptr<grpc::ClientContext> Client::Context(int extra_seconds) const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(g_.timeout_seconds + extra_seconds));
  return ctx;
}

int Client::Fail(const std::string& what, const grpc::Status& st) const {
  std::string hint;
  switch (st.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      hint = "\n  Is the controller running (`systemctl status ipfleet-controller`)? Point the CLI at it with "
             "--controller unix:PATH|HOST:PORT or IPFLEET_CONTROLLER";
      if (st.error_message().find("ermission denied") != std::string::npos) {
        hint = "\n  The admin socket is mode 0600: run as the controller's user (root)";
      }
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      hint = "\n  This controller does not support that operation; upgrade ipfleet-controller";
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      if (target_.rfind("unix:", 0) != 0) {
        hint = "\n  Over TCP the controller needs an admin client certificate: --tls-cert/--tls-key "
               "(issue one with `ipfleet cert issue --kind admin`)";
      }
      break;
    default:
      break;
  }
  std::fprintf(stderr, "ipfleet: %s failed (%s): %s%s\n", what.c_str(), target_.c_str(), st.error_message().c_str(),
               hint.c_str());
  return ExitCodeFor(st.error_code());
}

}  // namespace ipfleet::cli
