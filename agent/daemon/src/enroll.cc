#include "enroll.h"

#include <openssl/ssl.h>

#include <absl/strings/str_cat.h>
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "ipfleet/agent/sync/net.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/fingerprint.h"
#include "ipfleet/ca/keys.h"
#include "ipfleet/common/files.h"
#include "ipfleet/common/openssl.h"
#include "ipfleet/v1/agent_service.grpc.pb.h"

namespace ipfleet::agent::daemon {
namespace {

using SslCtxPtr = std::unique_ptr<SSL_CTX, ossl::Deleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, ossl::Deleter<SSL_free>>;

// Finds the CA whose fingerprint was pinned: in the controller's TLS chain, or in --ca-file.
absl::StatusOr<std::string> PinnedCa(const EnrollOptions& o, const std::string& controller) {
  std::vector<std::string> candidates;
  if (!o.ca_file.empty()) {
    IPFLEET_ASSIGN_OR_RETURN(std::string pem, files::Read(o.ca_file));
    candidates.push_back(pem);
  } else {
    IPFLEET_ASSIGN_OR_RETURN(candidates, FetchPeerChain(controller, o.timeout_seconds));
  }
  for (const auto& pem : candidates) {
    auto fp = ca::FingerprintSha256Pem(pem);
    if (fp.ok() && ca::FingerprintEquals(*fp, o.ca_fingerprint)) return pem;
  }
  return absl::PermissionDeniedError(absl::StrCat(
      "no CA certificate with fingerprint ", o.ca_fingerprint, o.ca_file.empty() ? " in the controller's TLS chain" : " in --ca-file",
      o.ca_file.empty() ? " (the controller may send only its own certificate: pass --ca-file with the fleet CA, it is "
                          "checked against the fingerprint)"
                        : ""));
}

}  // namespace

absl::StatusOr<std::vector<std::string>> FetchPeerChain(const std::string& host_port, int timeout_seconds) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return ossl::Error("SSL_CTX_new");
  // No verification here on purpose: the chain is only a candidate list; trust comes from the
  // fingerprint check and then from a verified gRPC connection.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  ossl::Bio bio(BIO_new_ssl_connect(ctx.get()));
  if (!bio) return ossl::Error("BIO_new_ssl_connect");
  std::string target = host_port;
  if (BIO_set_conn_hostname(bio.get(), target.c_str()) != 1) return ossl::Error("BIO_set_conn_hostname");
  SSL* ssl = nullptr;
  BIO_get_ssl(bio.get(), &ssl);
  SSL_set_mode(ssl, SSL_MODE_AUTO_RETRY);
  // gRPC servers require ALPN h2.
  static const unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl, kAlpn, sizeof(kAlpn));
  (void)timeout_seconds;
  if (BIO_do_connect(bio.get()) != 1) return ossl::Error(absl::StrCat("TLS connect to ", host_port), absl::StatusCode::kUnavailable);
  if (BIO_do_handshake(bio.get()) != 1) return ossl::Error("TLS handshake", absl::StatusCode::kUnavailable);
  STACK_OF(X509)* chain = SSL_get_peer_cert_chain(ssl);
  std::vector<std::string> out;
  for (int i = 0; chain && i < sk_X509_num(chain); ++i) {
    auto pem = ca::CertificateToPem(sk_X509_value(chain, i));
    if (pem.ok()) out.push_back(*pem);
  }
  return out;
}

// One enrollment attempt against one controller replica.
absl::Status EnrollAt(const EnrollOptions& o, const std::string& controller) {
  IPFLEET_ASSIGN_OR_RETURN(std::string ca_pem, PinnedCa(o, controller));
  spdlog::info("event=ca_pinned fingerprint={}", o.ca_fingerprint);

  // The key is made here and stays here.
  IPFLEET_ASSIGN_OR_RETURN(ossl::PKey key, ca::GenerateKey(ca::KeyType::kEcdsaP256));
  IPFLEET_ASSIGN_OR_RETURN(std::string csr, ca::MakeCsrPem(key.get(), o.name));

  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = ca_pem;
  grpc::ChannelArguments args;
  if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);
  auto channel = grpc::CreateCustomChannel(controller, grpc::SslCredentials(tls), args);
  auto stub = v1::AgentService::NewStub(channel);
  v1::EnrollRequest req;
  req.set_host(o.name);
  req.set_token(o.token);
  req.set_csr_pem(csr);
  v1::EnrollResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(o.timeout_seconds));
  grpc::Status st = stub->Enroll(&ctx, req, &resp);
  if (!st.ok()) {
    return absl::Status(static_cast<absl::StatusCode>(st.error_code()), absl::StrCat("Enroll: ", st.error_message()));
  }
  // The issued certificate must be for our key and chain to the pinned CA.
  IPFLEET_ASSIGN_OR_RETURN(auto cert, ca::ParseCertificatePem(resp.certificate_pem()));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InternalError("Enroll: issued certificate does not match the generated key");
  }
  IPFLEET_ASSIGN_OR_RETURN(auto ca_cert, ca::ParseCertificatePem(ca_pem));
  ossl::PKey ca_pub(X509_get_pubkey(ca_cert.get()));
  if (!ca_pub || X509_verify(cert.get(), ca_pub.get()) != 1) {
    return absl::PermissionDeniedError("Enroll: issued certificate is not signed by the pinned CA");
  }
  IPFLEET_RETURN_IF_ERROR(ca::SavePrivateKey(HostKey(o.data_dir), key.get()));
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(HostCert(o.data_dir), resp.certificate_pem(), 0644));
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(CaCert(o.data_dir), ca_pem, 0644));
  if (!resp.crl().empty()) IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(Crl(o.data_dir), resp.crl(), 0644));
  // The endpoints the operator gave stay first; replicas the controller named are added after them.
  std::vector<std::string> controllers = o.controllers;
  for (const std::string& c : resp.controllers()) {
    if (std::find(controllers.begin(), controllers.end(), c) == controllers.end()) controllers.push_back(c);
  }
  IPFLEET_RETURN_IF_ERROR(SaveConfig(o.data_dir, AgentConfig{o.name, controllers, o.tls_server_name}));
  auto info = ca::InspectCertificatePem(resp.certificate_pem());
  spdlog::info("event=enrolled host={} controller={} serial={}", o.name, controller, info.ok() ? info->serial_hex : "?");
  return absl::OkStatus();
}

absl::Status Enroll(const EnrollOptions& o) {
  if (o.name.empty() || o.token.empty() || o.ca_fingerprint.empty() || o.controllers.empty()) {
    return absl::InvalidArgumentError("enroll needs --controller, --name, --token and --ca-fingerprint");
  }
  IPFLEET_RETURN_IF_ERROR(files::EnsureDir(o.data_dir, 0700));
  IPFLEET_RETURN_IF_ERROR(files::EnsureDir(TlsDir(o.data_dir), 0700));
  absl::Status last;
  for (const std::string& controller : o.controllers) {
    last = EnrollAt(o, controller);
    // Only an unreachable replica is a reason to try the next; a refused token is final.
    if (last.ok() || !(absl::IsUnavailable(last) || absl::IsDeadlineExceeded(last))) return last;
    spdlog::warn("event=enroll_controller_unreachable controller={} error=\"{}\"", controller, std::string(last.message()));
  }
  return last;
}

}  // namespace ipfleet::agent::daemon
