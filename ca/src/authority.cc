#include "ipfleet/ca/authority.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <system_error>

#include <spdlog/spdlog.h>

#include "ipfleet/ca/csr.h"
#include "ipfleet/ca/fingerprint.h"
#include "ipfleet/ca/layout.h"
#include "ipfleet/common/files.h"
#include "csr_fast.h"
#include "issue_builder.h"
#include "x509_util.h"

namespace ipfleet::ca {

namespace {

namespace fs = std::filesystem;

// Holds an exclusive flock on DIR/ca/.lock so the offline CLI and a running controller never
// interleave read-modify-write cycles of state.json.
class StateLock {
 public:
  static absl::StatusOr<StateLock> Acquire(const fs::path& data_dir) {
    fs::path path = layout::CaDir(data_dir) / ".lock";
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      return absl::PermissionDeniedError("open " + path.string() + ": " + std::strerror(errno));
    }
    while (flock(fd, LOCK_EX) != 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return absl::InternalError("flock " + path.string() + ": " + std::strerror(err));
    }
    return StateLock(fd);
  }
  StateLock(StateLock&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  StateLock& operator=(StateLock&&) = delete;
  ~StateLock() {
    if (fd_ >= 0) close(fd_);  // closing releases the lock
  }

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_;
};

absl::StatusOr<CaState> ReadState(const fs::path& data_dir) {
  fs::path path = layout::CaState(data_dir);
  auto text = files::Read(path);
  if (!text.ok()) {
    return absl::Status(text.status().code(), "CA state: " + std::string(text.status().message()));
  }
  return ParseCaState(*text, path.string());
}

// Undoes file creation unless committed: Init leaves nothing behind when it fails half-way.
class CreatedFiles {
 public:
  ~CreatedFiles() {
    if (committed_) return;
    for (auto it = paths_.rbegin(); it != paths_.rend(); ++it) {
      std::error_code ec;
      fs::remove(*it, ec);  // directories only go if they are empty
    }
  }
  void Add(const fs::path& p) { paths_.push_back(p); }
  void Commit() { committed_ = true; }
  // Creates `dir` (mode) and its missing parents, remembering the ones we made.
  absl::Status MakeDir(const fs::path& dir, mode_t mode) {
    std::vector<fs::path> missing;
    for (fs::path p = dir; !p.empty() && !fs::exists(p); p = p.parent_path()) {
      missing.push_back(p);
      if (p == p.parent_path()) break;
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
      if (mkdir(it->c_str(), mode) != 0 && errno != EEXIST) {
        return absl::PermissionDeniedError("mkdir " + it->string() + ": " + std::strerror(errno));
      }
      Add(*it);
    }
    if (access(dir.c_str(), W_OK | X_OK) != 0) {
      return absl::PermissionDeniedError("data directory " + dir.string() + " is not writable: " +
                                         std::strerror(errno));
    }
    return absl::OkStatus();
  }
  absl::Status Write(const fs::path& path, std::string_view data, mode_t mode) {
    IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(path, data, mode));
    Add(path);
    return absl::OkStatus();
  }
  absl::Status WriteKey(const fs::path& path, EVP_PKEY* key) {
    IPFLEET_RETURN_IF_ERROR(SavePrivateKey(path, key));
    Add(path);
    return absl::OkStatus();
  }

 private:
  std::vector<fs::path> paths_;
  bool committed_ = false;
};

absl::Status RefuseExistingCa(const fs::path& data_dir) {
  for (const fs::path& p : {layout::CaKey(data_dir), layout::CaCert(data_dir), layout::CaState(data_dir)}) {
    std::error_code ec;
    if (fs::exists(p, ec)) {
      return absl::AlreadyExistsError("a CA already exists in " + data_dir.string() + " (" + p.string() +
                                      "); refusing to overwrite it");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CertificateAuthority>> InitInto(const fs::path& data_dir,
                                                               const InitOptions& options,
                                                               CreatedFiles& created);

}  // namespace

CertificateAuthority::~CertificateAuthority() = default;

absl::Status CertificateAuthority::Finish() {
  if (X509_check_private_key(ca_cert_.get(), ca_key_.get()) != 1) {
    return ossl::Error("X509_check_private_key (CA key does not match the CA certificate)",
                       absl::StatusCode::kFailedPrecondition);
  }
  if ((X509_get_extension_flags(ca_cert_.get()) & EXFLAG_CA) == 0) {
    return absl::FailedPreconditionError("CA certificate lacks basicConstraints CA:TRUE");
  }
  auto kt = KeyTypeOf(ca_key_.get());
  if (!kt.ok()) return absl::FailedPreconditionError("CA key: " + std::string(kt.status().message()));
  key_type_ = *kt;
  IPFLEET_ASSIGN_OR_RETURN(ca_cert_pem_, CertificateToPem(ca_cert_.get()));
  IPFLEET_ASSIGN_OR_RETURN(fingerprint_, FingerprintSha256(ca_cert_.get()));
  tmpl_ = std::make_unique<internal::IssuerTemplate>();
  return internal::BuildIssuerTemplate(ca_cert_.get(), ca_key_.get(), tmpl_.get());
}

namespace {

absl::StatusOr<std::unique_ptr<CertificateAuthority>> InitInto(const fs::path& data_dir,
                                                               const InitOptions& options,
                                                               CreatedFiles& created) {
  IPFLEET_RETURN_IF_ERROR(RefuseExistingCa(data_dir));
  IPFLEET_ASSIGN_OR_RETURN(ossl::PKey key, GenerateKey(options.key_type));
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr root, internal::MakeRoot(key.get(), options.name, options.days));
  IPFLEET_ASSIGN_OR_RETURN(std::string root_pem, CertificateToPem(root.get()));
  // Everything that can fail on bad input has been checked; only now touch the disk.
  IPFLEET_RETURN_IF_ERROR(created.MakeDir(data_dir, 0700));
  IPFLEET_RETURN_IF_ERROR(created.MakeDir(layout::CaDir(data_dir), 0700));
  IPFLEET_RETURN_IF_ERROR(created.WriteKey(layout::CaKey(data_dir), key.get()));
  IPFLEET_RETURN_IF_ERROR(created.Write(layout::CaCert(data_dir), root_pem, 0644));
  IPFLEET_RETURN_IF_ERROR(created.Write(layout::CaState(data_dir), SerializeCaState(CaState{}), 0600));
  created.Add(layout::CaDir(data_dir) / ".lock");
  return CertificateAuthority::Load(data_dir);
}

}  // namespace

absl::StatusOr<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Init(
    const fs::path& data_dir, const InitOptions& options) {
  CreatedFiles created;
  IPFLEET_ASSIGN_OR_RETURN(auto ca, InitInto(data_dir, options, created));
  created.Commit();
  spdlog::info("event=ca_init dir={} key={} fingerprint={}", data_dir.string(), KeyTypeName(ca->key_type()),
               ca->Fingerprint());
  return ca;
}

absl::StatusOr<std::unique_ptr<CertificateAuthority>> CertificateAuthority::Load(const fs::path& data_dir) {
  std::unique_ptr<CertificateAuthority> ca(new CertificateAuthority());
  ca->data_dir_ = data_dir;
  IPFLEET_ASSIGN_OR_RETURN(ca->ca_cert_, LoadCertificate(layout::CaCert(data_dir)));
  IPFLEET_ASSIGN_OR_RETURN(ca->ca_key_, LoadPrivateKey(layout::CaKey(data_dir)));
  IPFLEET_ASSIGN_OR_RETURN(ca->state_, ReadState(data_dir));
  absl::Status st = ca->Finish();
  if (!st.ok()) {
    return absl::Status(st.code(), "CA in " + layout::CaDir(data_dir).string() + ": " + std::string(st.message()));
  }
  return ca;
}

absl::StatusOr<IssuedCert> CertificateAuthority::Store(absl::StatusOr<IssuedCert> issued) const {
  if (!issued.ok()) return issued;
  if (store_) IPFLEET_RETURN_IF_ERROR(store_(*issued));
  return issued;
}

absl::StatusOr<IssuedCert> CertificateAuthority::Issue(std::string_view csr_pem,
                                                       const IssueRequest& request) const {
  // Cheap request checks first so a bad name fails before any signature work.
  IPFLEET_RETURN_IF_ERROR(internal::ValidateRequest(request));
  if (auto fast = internal::TryFastCsr(csr_pem)) {
    return Store(internal::SignLeaf(*tmpl_, internal::LeafKey{nullptr, std::move(fast->p256_point)}, request));
  }
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Req csr, ParseAndVerifyCsr(csr_pem));
  return Store(internal::SignLeaf(*tmpl_, internal::LeafKey{X509_REQ_get0_pubkey(csr.get()), {}}, request));
}

absl::StatusOr<IssuedCert> CertificateAuthority::Issue(X509_REQ* csr, const IssueRequest& request) const {
  IPFLEET_RETURN_IF_ERROR(internal::ValidateRequest(request));
  IPFLEET_RETURN_IF_ERROR(VerifyCsr(csr));
  return Store(internal::SignLeaf(*tmpl_, internal::LeafKey{X509_REQ_get0_pubkey(csr), {}}, request));
}

absl::StatusOr<IssuedCert> CertificateAuthority::IssueForKey(EVP_PKEY* public_key,
                                                             const IssueRequest& request) const {
  return Store(internal::SignLeaf(*tmpl_, internal::LeafKey{public_key, {}}, request));
}

absl::StatusOr<IssuedCert> CertificateAuthority::Renew(std::string_view new_csr_pem,
                                                       std::string_view old_cert_pem, int days) const {
  IPFLEET_ASSIGN_OR_RETURN(ossl::X509Ptr old, ParseCertificatePem(old_cert_pem));
  if (X509_verify(old.get(), ca_key_.get()) != 1) {
    return ossl::Error("X509_verify (certificate to renew was not issued by this CA)",
                       absl::StatusCode::kPermissionDenied);
  }
  IPFLEET_ASSIGN_OR_RETURN(CertInfo info, InspectCertificate(old.get()));
  if (IsRevoked(info.serial_hex)) {
    return absl::PermissionDeniedError("certificate " + info.serial_hex + " is revoked; refusing to renew it");
  }
  IssueRequest req;
  req.common_name = info.subject_cn;
  req.ips = info.ips;
  req.dns = info.dns;
  req.profile = internal::ProfileFromEkus(info.ekus);
  if (days > 0) {
    req.days = days;
  } else {
    auto span = std::chrono::duration_cast<std::chrono::hours>(info.not_after - info.not_before);
    req.days = std::clamp(static_cast<int>((span.count() + 23) / 24), 1, 3650);
  }
  return Issue(new_csr_pem, req);
}

absl::Status CertificateAuthority::Revoke(std::string_view serial_hex, RevocationReason reason) {
  IPFLEET_ASSIGN_OR_RETURN(std::string serial, NormalizeSerialHex(serial_hex));
  IPFLEET_ASSIGN_OR_RETURN(StateLock lock, StateLock::Acquire(data_dir_));
  IPFLEET_ASSIGN_OR_RETURN(CaState state, ReadState(data_dir_));
  for (const RevokedEntry& e : state.revoked) {
    if (e.serial_hex == serial) {
      return absl::AlreadyExistsError("certificate " + serial + " is already revoked");
    }
  }
  state.revoked.push_back(RevokedEntry{serial, reason,
                                       std::chrono::time_point_cast<std::chrono::seconds>(
                                           std::chrono::system_clock::now())});
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(layout::CaState(data_dir_), SerializeCaState(state), 0600));
  {
    std::lock_guard<std::mutex> g(state_mu_);
    state_ = std::move(state);
  }
  spdlog::info("event=ca_revoke serial={} reason={}", serial, RevocationReasonName(reason));
  return absl::OkStatus();
}

bool CertificateAuthority::IsRevoked(std::string_view serial_hex) const {
  auto serial = NormalizeSerialHex(serial_hex);
  if (!serial.ok()) return false;
  std::lock_guard<std::mutex> g(state_mu_);
  return std::any_of(state_.revoked.begin(), state_.revoked.end(),
                     [&](const RevokedEntry& e) { return e.serial_hex == *serial; });
}

std::vector<RevokedEntry> CertificateAuthority::Revoked() const {
  std::lock_guard<std::mutex> g(state_mu_);
  return state_.revoked;
}

absl::StatusOr<GeneratedCrl> CertificateAuthority::Crl(std::chrono::seconds validity) {
  if (validity <= std::chrono::seconds(0)) return absl::InvalidArgumentError("CRL validity must be positive");
  IPFLEET_ASSIGN_OR_RETURN(StateLock lock, StateLock::Acquire(data_dir_));
  IPFLEET_ASSIGN_OR_RETURN(CaState state, ReadState(data_dir_));
  GeneratedCrl out;
  out.crl_number = state.crl_number + 1;
  out.this_update = std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::system_clock::now());
  out.next_update = out.this_update + validity;
  IPFLEET_ASSIGN_OR_RETURN(out.pem, internal::MakeCrl(ca_cert_.get(), ca_key_.get(), state, out.crl_number,
                                                      out.this_update, out.next_update));
  state.crl_number = out.crl_number;
  size_t revoked_count = state.revoked.size();
  // The number is persisted before the CRL leaves us, so a number is never handed out twice.
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(layout::CaState(data_dir_), SerializeCaState(state), 0600));
  IPFLEET_RETURN_IF_ERROR(files::WriteAtomic(layout::CaCrl(data_dir_), out.pem, 0644));
  {
    std::lock_guard<std::mutex> g(state_mu_);
    state_ = std::move(state);
  }
  spdlog::info("event=ca_crl number={} revoked={}", out.crl_number, revoked_count);
  return out;
}

absl::StatusOr<std::unique_ptr<CertificateAuthority>> InitControllerPki(const fs::path& data_dir,
                                                                        const ControllerInitOptions& options) {
  // Validate everything the user typed before anything is created.
  IssueRequest tls;
  tls.common_name = options.controller_name;
  tls.profile = Profile::kController;
  tls.days = 825;
  std::vector<std::string> addresses = options.addresses;
  if (addresses.empty()) addresses = {"127.0.0.1", "localhost"};
  for (const std::string& a : addresses) {
    unsigned char buf[16];
    if (inet_pton(AF_INET, a.c_str(), buf) == 1 || inet_pton(AF_INET6, a.c_str(), buf) == 1) {
      tls.ips.push_back(a);
    } else {
      tls.dns.push_back(a);
    }
  }
  IPFLEET_RETURN_IF_ERROR(internal::ValidateRequest(tls));
  IssueRequest signer;
  signer.common_name = std::string(kPolicySignerCommonName);
  signer.profile = Profile::kPolicySigner;
  signer.days = 825;

  CreatedFiles created;
  IPFLEET_ASSIGN_OR_RETURN(auto ca, InitInto(data_dir, options.ca, created));
  IPFLEET_ASSIGN_OR_RETURN(ossl::PKey tls_key, GenerateKey(options.ca.key_type));
  IPFLEET_ASSIGN_OR_RETURN(IssuedCert tls_cert, ca->IssueForKey(tls_key.get(), tls));
  IPFLEET_ASSIGN_OR_RETURN(ossl::PKey signer_key, GenerateKey(options.ca.key_type));
  IPFLEET_ASSIGN_OR_RETURN(IssuedCert signer_cert, ca->IssueForKey(signer_key.get(), signer));
  IPFLEET_RETURN_IF_ERROR(created.MakeDir(layout::TlsDir(data_dir), 0700));
  IPFLEET_RETURN_IF_ERROR(created.WriteKey(layout::ControllerKey(data_dir), tls_key.get()));
  IPFLEET_RETURN_IF_ERROR(created.Write(layout::ControllerCert(data_dir), tls_cert.pem, 0644));
  IPFLEET_RETURN_IF_ERROR(created.WriteKey(layout::PolicySignerKey(data_dir), signer_key.get()));
  IPFLEET_RETURN_IF_ERROR(created.Write(layout::PolicySignerCert(data_dir), signer_cert.pem, 0644));
  created.Commit();
  spdlog::info("event=controller_pki_init dir={} key={} fingerprint={} tls_serial={} signer_serial={}",
               data_dir.string(), KeyTypeName(ca->key_type()), ca->Fingerprint(), tls_cert.serial_hex,
               signer_cert.serial_hex);
  return ca;
}

}  // namespace ipfleet::ca
