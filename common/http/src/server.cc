#include "ipfleet/common/http/server.h"

#include <arpa/inet.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <absl/strings/str_cat.h>

#include "connection_deadlines.h"
#include "ipfleet/common/openssl.h"

namespace ipfleet::http {
namespace {

// Loads the chain (leaf first), the key and optionally the client CA into a fresh SSL_CTX.
// Errors go into *error: httplib's constructor cannot return one.
bool SetUpTls(SSL_CTX& ctx, const ServerOptions& o, std::string* error) {
  auto fail = [&](const char* what) {
    *error = absl::StrCat(what, ": ", ossl::DrainErrors());
    return false;
  };
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  // Browsers resume sessions on every further connection; with peer verification requested,
  // OpenSSL refuses to resume (and fails the handshake) unless a session id context is set.
  static const unsigned char kSessionContext[] = "ipfleet-http";
  SSL_CTX_set_session_id_context(&ctx, kSessionContext, sizeof kSessionContext - 1);
  ossl::Bio chain(BIO_new_mem_buf(o.tls_chain_pem.data(), static_cast<int>(o.tls_chain_pem.size())));
  ossl::X509Ptr leaf(PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr));
  if (!leaf || SSL_CTX_use_certificate(&ctx, leaf.get()) != 1) return fail("TLS certificate");
  while (X509* extra = PEM_read_bio_X509(chain.get(), nullptr, nullptr, nullptr)) {
    if (SSL_CTX_add0_chain_cert(&ctx, extra) != 1) {
      X509_free(extra);
      return fail("TLS certificate chain");
    }
  }
  ERR_clear_error();  // the loop above ends on a "no start line" error
  ossl::Bio key_bio(BIO_new_mem_buf(o.tls_key_pem.data(), static_cast<int>(o.tls_key_pem.size())));
  ossl::PKey key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (!key || SSL_CTX_use_PrivateKey(&ctx, key.get()) != 1 || SSL_CTX_check_private_key(&ctx) != 1) {
    return fail("TLS private key");
  }
  if (!o.client_ca_pem.empty()) {
    ossl::Bio ca_bio(BIO_new_mem_buf(o.client_ca_pem.data(), static_cast<int>(o.client_ca_pem.size())));
    ossl::X509Ptr ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (!ca || SSL_CTX_add_client_CA(&ctx, ca.get()) != 1) return fail("client CA");
    // Ask for a certificate but let the handshake finish whatever comes: the handler verifies it
    // (chain, CRL, inventory) and a client without one may still log in with a token.
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, [](int, X509_STORE_CTX*) { return 1; });
  } else {
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_NONE, nullptr);
  }
  return true;
}

}  // namespace

bool IsLoopbackAddress(std::string_view ip) {
  std::string s(ip);
  in_addr v4{};
  if (inet_pton(AF_INET, s.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, s.c_str(), &v6) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
  return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
}

Server::Server(ServerOptions options) : o_(std::move(options)) {
  tls_ = !o_.tls_chain_pem.empty() && !o_.tls_key_pem.empty();
  if (tls_) {
    deadlines_ = std::make_unique<ConnectionDeadlines>(std::chrono::seconds(o_.max_connection_seconds));
    server_ = std::make_unique<httplib::SSLServer>([this](SSL_CTX& ctx) {
      if (!SetUpTls(ctx, o_, &setup_error_)) return false;
      deadlines_->Install(&ctx);
      return true;
    });
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  int workers = o_.workers;
  server_->new_task_queue = [workers] { return new httplib::ThreadPool(static_cast<size_t>(workers)); };
  server_->set_read_timeout(o_.read_timeout_seconds, 0);
  server_->set_write_timeout(o_.write_timeout_seconds, 0);
  server_->set_keep_alive_timeout(o_.read_timeout_seconds);
  server_->set_keep_alive_max_count(100);
  server_->set_payload_max_length(o_.max_body_bytes);
  server_->set_exception_handler([name = o_.name](const httplib::Request& req, httplib::Response& res,
                                                  std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("event=http_handler_failed server={} path={} error=\"{}\"", name, req.path, what);
    res.status = 500;
    res.set_content("internal error\n", "text/plain");
  });
  server_->set_default_headers({{"X-Content-Type-Options", "nosniff"}, {"Cache-Control", "no-store"}});
}

Server::~Server() { Stop(); }

absl::Status Server::Start() {
  IPFLEET_RETURN_IF_ERROR(Bind());
  Serve();
  return absl::OkStatus();
}

absl::Status Server::Bind() {
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(absl::StrCat(o_.name, ": TLS set-up failed: ", setup_error_));
  }
  in6_addr any{};
  if (inet_pton(AF_INET, o_.address.c_str(), &any) != 1 && inet_pton(AF_INET6, o_.address.c_str(), &any) != 1) {
    return absl::InvalidArgumentError(absl::StrCat(o_.name, ": bind address '", o_.address, "' is not an IP address"));
  }
  if (o_.loopback_only && !IsLoopbackAddress(o_.address)) {
    return absl::InvalidArgumentError(absl::StrCat(o_.name, ": refusing non-loopback bind address ", o_.address,
                                                   " (this endpoint has no authentication)"));
  }
  if (o_.port == 0) {
    port_ = server_->bind_to_any_port(o_.address);
    if (port_ <= 0) port_ = 0;
  } else if (server_->bind_to_port(o_.address, o_.port)) {
    port_ = o_.port;
  }
  if (port_ == 0) {
    return absl::UnavailableError(absl::StrCat(o_.name, ": cannot listen on ", o_.address, ":", o_.port,
                                               " (address in use or not on this host?)"));
  }
  return absl::OkStatus();
}

void Server::Serve() {
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  spdlog::info("event=http_listening server={} address={} port={} tls={}", o_.name, o_.address, port_, tls_);
}

void Server::Stop() {
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();  // httplib joins its workers before listen_after_bind returns
}

std::string Server::ClientCertificatePem(const httplib::Request& req) {
  if (!req.ssl) return "";
  X509* cert = SSL_get0_peer_certificate(req.ssl);
  if (!cert) return "";
  ossl::Bio out(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_X509(out.get(), cert) != 1) return "";
  return ossl::BioToString(out.get());
}

}  // namespace ipfleet::http
