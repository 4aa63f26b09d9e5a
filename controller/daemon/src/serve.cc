#include "ipfleet/controller/daemon/serve.h"

#include <absl/strings/str_cat.h>
#include <absl/synchronization/mutex.h>
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/security/server_credentials.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>

#ifdef IPFLEET_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ipfleet/ca/authority.h"
#include "ipfleet/ca/cert.h"
#include "ipfleet/ca/layout.h"
#include "controller_metrics.h"
#include "ipfleet/common/files.h"
#include "ipfleet/common/http/metrics_endpoint.h"
#include "ipfleet/common/metrics.h"
#include "ipfleet/controller/api/dashboard_tokens.h"
#include "ipfleet/controller/dashboard/dashboard.h"
#include "ipfleet/controller/api/admin_service.h"
#include "ipfleet/controller/api/agent_service.h"
#include "ipfleet/controller/api/pki.h"
#include "ipfleet/controller/api/session_registry.h"
#include "ipfleet/controller/inventory/open_store.h"
#include "ipfleet/controller/replication/replication.h"
#include "ipfleet/common/memory.h"
#include "ipfleet/controller/daemon/tls_buffers.h"

namespace ipfleet::controller {
namespace {

// Holds an exclusive flock on DIR/controller.lock for the life of the process: two controllers
// on one data directory would steal each other's admin socket and race on the CA state.
class DirLock {
 public:
  static absl::StatusOr<std::unique_ptr<DirLock>> Acquire(const std::filesystem::path& dir) {
    std::filesystem::path p = dir / "controller.lock";
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("open(", p.string(), "): ", std::strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd);
      return absl::FailedPreconditionError(absl::StrCat(
          "another ipfleet-controller is already running on ", dir.string(), " (", p.string(), " is locked)"));
    }
    return std::unique_ptr<DirLock>(new DirLock(fd));
  }
  ~DirLock() { ::close(fd_); }

 private:
  explicit DirLock(int fd) : fd_(fd) {}
  int fd_;
};

bool IsWildcard(const std::string& host) {
  return host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::";
}

// "HOST:PORT" / "[V6]:PORT" -> host part (brackets kept).
std::string HostPart(const std::string& addr) {
  auto colon = addr.rfind(':');
  return colon == std::string::npos ? addr : addr.substr(0, colon);
}

std::string WithPort(const std::string& addr, int port) { return absl::StrCat(HostPart(addr), ":", port); }

// --inventory, else DATA_DIR/inventory.url (one line, may hold a password: keep it 0600), else sqlite.
absl::StatusOr<std::string> InventorySpec(const std::string& flag, const std::filesystem::path& dir) {
  if (!flag.empty()) return flag;
  std::filesystem::path file = dir / "inventory.url";
  std::error_code ec;
  if (!std::filesystem::exists(file, ec)) return std::string("sqlite");
  IPFLEET_ASSIGN_OR_RETURN(std::string text, files::Read(file));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(file.string(), " is empty; remove it for SQLite"));
  return text;
}

std::string DefaultReplicaId(int agent_port) {
  char name[256] = {0};
  if (::gethostname(name, sizeof(name) - 1) != 0) std::snprintf(name, sizeof(name), "controller");
  return absl::StrCat(name, ":", agent_port);
}

}  // namespace

struct Controller::Impl {
  ServeOptions options;
  // First: the store's transaction observer and the collectors point into it.
  Metrics metrics;
  std::unique_ptr<DirLock> lock;
  std::unique_ptr<inventory::Store> store;
  std::unique_ptr<ca::CertificateAuthority> ca;
  std::unique_ptr<Pki> pki;
  SessionRegistry sessions;
  ControllerContext ctx;
  std::unique_ptr<FleetModule> fleet;
  std::unique_ptr<Replication> replication;
  std::unique_ptr<AgentServiceImpl> agent_service;
  std::unique_ptr<AdminServiceImpl> admin_service;
  std::unique_ptr<grpc::Server> agent_server;
  std::unique_ptr<grpc::Server> admin_server;
  std::unique_ptr<DashboardTokens> dashboard_tokens;
  std::unique_ptr<Dashboard> dashboard;
  std::unique_ptr<http::MetricsEndpoint> metrics_endpoint;
  int agent_port = 0;
  int admin_tcp_port = 0;
  std::filesystem::path admin_socket;
  bool stopped = false;
};

Controller::Controller(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Controller::~Controller() { Shutdown(); }

int Controller::agent_port() const { return impl_->agent_port; }
int Controller::admin_tcp_port() const { return impl_->admin_tcp_port; }
int Controller::dashboard_port() const { return impl_->dashboard ? impl_->dashboard->port() : 0; }
int Controller::metrics_port() const { return impl_->metrics_endpoint ? impl_->metrics_endpoint->port() : 0; }
std::filesystem::path Controller::admin_socket() const { return impl_->admin_socket; }
ControllerContext& Controller::context() { return impl_->ctx; }
absl::Status Controller::RefreshCrl() { return impl_->pki->RefreshCrl(); }

absl::StatusOr<std::unique_ptr<Controller>> Controller::Start(const ServeOptions& options) {
  // gRPC's mutexes are absl::Mutex, and Debian's abseil is built with its debug deadlock
  // detector on: every lock walks a global graph whose hash chains grow with the number of live
  // mutexes (several per connection), so with thousands of agent sessions it became the largest
  // CPU item (perf: GraphCycles::GetId). It is a debugging aid only; the controller turns it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CapAllocatorThreadCaches(8 << 20);  // bench/rollout: thread caches grew to 21 MiB over 3 rollouts
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  const std::filesystem::path& dir = options.data_dir;
  std::error_code ec;
  if (!std::filesystem::exists(ca::layout::CaCert(dir), ec)) {
    return absl::FailedPreconditionError(absl::StrCat("no CA in ", dir.string(),
                                                      "; run `ipfleet-controller init --data-dir ",
                                                      dir.string(), "` first"));
  }
  IPFLEET_ASSIGN_OR_RETURN(impl->lock, DirLock::Acquire(dir));
  IPFLEET_ASSIGN_OR_RETURN(impl->ca, ca::CertificateAuthority::Load(dir));
  inventory::SqliteOptions so;
  so.fsync_every_commit = options.fsync_every_commit;
  IPFLEET_ASSIGN_OR_RETURN(std::string inventory_spec, InventorySpec(options.inventory, dir));
  IPFLEET_ASSIGN_OR_RETURN(impl->store, inventory::OpenStore(inventory_spec, ca::layout::InventoryDb(dir), so));
  impl->pki = std::make_unique<Pki>(*impl->ca, *impl->store, options.clock);
  IPFLEET_RETURN_IF_ERROR(impl->pki->Start());

  IPFLEET_ASSIGN_OR_RETURN(std::string tls_cert, files::Read(ca::layout::ControllerCert(dir)));
  IPFLEET_ASSIGN_OR_RETURN(std::string tls_key, files::Read(ca::layout::ControllerKey(dir)));

  ControllerContext& ctx = impl->ctx;
  ctx.data_dir = dir;
  ctx.store = impl->store.get();
  ctx.ca = impl->ca.get();
  ctx.pki = impl->pki.get();
  ctx.sessions = &impl->sessions;
  ctx.clock = options.clock;
  ctx.metrics = &impl->metrics;
  {
    absl::StatusOr<ca::CertInfo> ca_info = ca::InspectCertificatePem(impl->ca->CertificatePem());
    int64_t ca_not_after =
        ca_info.ok() ? std::chrono::duration_cast<std::chrono::seconds>(ca_info->not_after.time_since_epoch()).count() : 0;
    InstallControllerMetrics(impl->metrics, ctx, ca_not_after);
  }

  // --- AgentService: TLS; the client certificate is requested but checked per call, so Enroll
  // works without one and Session can refuse with a clear status instead of a handshake error.
  grpc::SslServerCredentialsOptions agent_tls(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  agent_tls.pem_root_certs = impl->ca->CertificatePem();
  // The chain carries the CA certificate too, so that `ipfleet-agent enroll --ca-fingerprint` finds
  // the CA to pin in the handshake (it is trusted only after the fingerprint matches).
  std::string tls_chain = tls_cert;
  if (tls_chain.find(impl->ca->CertificatePem()) == std::string::npos) {
    if (!tls_chain.empty() && tls_chain.back() != '\n') tls_chain += '\n';
    tls_chain += impl->ca->CertificatePem();
  }
  agent_tls.pem_key_cert_pairs.push_back({tls_key, tls_chain});
  impl->agent_service = std::make_unique<AgentServiceImpl>(ctx);
  {
    grpc::ServerBuilder b;
    b.AddListeningPort(options.listen, grpc::SslServerCredentials(agent_tls), &impl->agent_port);
    b.RegisterService(impl->agent_service.get());
    b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
    b.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
    b.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
    b.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    // Memory per agent connection (10,000 mostly idle sessions are the normal case). Measured with
    // bench/rollout at 2,000 sessions: a 4 KiB TLS frame (gRPC's default is 16 KiB, one buffer of
    // that size per connection for the life of the connection) saved ~7.5 KiB per session; agent
    // messages are small, so larger frames buy nothing. The BDP probe only matters for bulk
    // transfers; off, it no longer pings every busy session.
    b.AddChannelArgument(GRPC_ARG_TSI_MAX_FRAME_SIZE, 4096);
    b.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    impl->agent_server = b.BuildAndStart();
    if (!impl->agent_server || impl->agent_port == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen,
                                                 " for agents (address in use or not local?); choose another with --listen"));
    }
  }
  if (!options.advertise.empty()) {
    ctx.agent_endpoint = options.advertise;
  } else if (!IsWildcard(HostPart(options.listen))) {
    ctx.agent_endpoint = WithPort(options.listen, impl->agent_port);
  } else {
    absl::StatusOr<ca::CertInfo> info = ca::InspectCertificatePem(tls_cert);
    std::string host = info.ok() && !info->ips.empty() ? info->ips.front() : "127.0.0.1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    ctx.agent_endpoint = absl::StrCat(host, ":", impl->agent_port);
  }

  if (options.fleet_factory) {
    IPFLEET_ASSIGN_OR_RETURN(impl->fleet, options.fleet_factory(ctx));
  }
  {
    ReplicationOptions ro;
    ro.replica_id = options.replica_id.empty() ? DefaultReplicaId(impl->agent_port) : options.replica_id;
    ro.endpoint = ctx.agent_endpoint;
    ctx.replica_id = ro.replica_id;
    impl->replication = std::make_unique<Replication>(ctx, impl->fleet.get(), ro);
    impl->replication->Wire();
    Replication* r = impl->replication.get();
    ctx.is_leader = [r] { return r->leader(); };
    ctx.describe_leader = [r] { return r->DescribeLeader(); };
#ifdef IPFLEET_HAVE_SYSTEMD
    // systemctl status shows whether the inventory answers and whether this replica leads.
    r->OnChange([r] {
      sd_notifyf(0, "STATUS=%s; %s", r->ready() ? "inventory reachable" : "inventory UNREACHABLE: admin writes refused",
                 r->leader() ? "leading" : "standby");
    });
#endif
  }

  // --- Dashboard: bound before the AdminService starts, so its URL (printed with every login
  // token) is known before any call can ask for one.
  if (!options.dashboard.empty()) {
    DashboardOptions dopts;
    IPFLEET_RETURN_IF_ERROR(ParseDashboardAddress(options.dashboard, &dopts));
    dopts.anonymous_loopback = options.dashboard_anonymous_loopback;
    dopts.max_connection_seconds = options.dashboard_max_connection_seconds;
    IPFLEET_ASSIGN_OR_RETURN(impl->dashboard_tokens, DashboardTokens::LoadOrCreate(dir));
    ctx.dashboard_tokens = impl->dashboard_tokens.get();
    IPFLEET_ASSIGN_OR_RETURN(impl->dashboard, Dashboard::Bind(ctx, tls_chain, tls_key, dopts));
    ctx.dashboard_url = impl->dashboard->url();
  }
  if (!options.metrics_listen.empty()) {
    DashboardOptions mopts;  // the same ADDRESS:PORT syntax
    IPFLEET_RETURN_IF_ERROR(ParseDashboardAddress(options.metrics_listen, &mopts));
    impl->metrics_endpoint = std::make_unique<http::MetricsEndpoint>(impl->metrics, mopts.address, mopts.port);
    IPFLEET_RETURN_IF_ERROR(impl->metrics_endpoint->Start());
  }

  // --- AdminService: unix socket 0600 (created under a tight umask so it is never wider), and
  // optionally TCP requiring a client certificate from the fleet CA (checked again per call for
  // the admin kind).
  impl->admin_service = std::make_unique<AdminServiceImpl>(ctx, impl->fleet.get());
  impl->admin_socket = std::filesystem::absolute(dir / "admin.sock");
  {
    grpc::ServerBuilder b;
    b.AddListeningPort("unix:" + impl->admin_socket.string(), grpc::InsecureServerCredentials());
    if (!options.admin_listen.empty()) {
      grpc::SslServerCredentialsOptions admin_tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
      admin_tls.pem_root_certs = impl->ca->CertificatePem();
      admin_tls.pem_key_cert_pairs.push_back({tls_key, tls_cert});
      b.AddListeningPort(options.admin_listen, grpc::SslServerCredentials(admin_tls), &impl->admin_tcp_port);
    }
    b.RegisterService(impl->admin_service.get());
    mode_t old = ::umask(0177);
    impl->admin_server = b.BuildAndStart();
    ::umask(old);
    if (!impl->admin_server || (!options.admin_listen.empty() && impl->admin_tcp_port == 0)) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", impl->admin_socket.string(),
                                                 options.admin_listen.empty() ? "" : " or " + options.admin_listen,
                                                 " for the AdminService"));
    }
    if (::chmod(impl->admin_socket.c_str(), 0600) != 0) {
      return absl::InternalError(absl::StrCat("chmod(", impl->admin_socket.string(), "): ", std::strerror(errno)));
    }
  }
  // Leads at once with SQLite, or when no other replica holds the lock; starts the fleet module then.
  IPFLEET_RETURN_IF_ERROR(impl->replication->Start());
  if (impl->dashboard) impl->dashboard->Serve(impl->admin_server->InProcessChannel(grpc::ChannelArguments()));
  if (!TlsReleaseBuffersActive()) {
    spdlog::warn("event=tls_release_buffers_inactive reason=\"SSL_new interposer not bound; ~34 KiB more per idle agent session\"");
  }
  spdlog::info("event=controller_started data_dir={} agent_listen={} agent_port={} agent_endpoint={} admin_socket={} "
               "admin_tcp_port={} dashboard={} metrics_port={} inventory={} schema={} replica={} leader={} "
               "ca_fingerprint={} tls_release_buffers={}",
               dir.string(), options.listen, impl->agent_port, ctx.agent_endpoint, impl->admin_socket.string(),
               impl->admin_tcp_port, ctx.dashboard_url.empty() ? "off" : ctx.dashboard_url,
               impl->metrics_endpoint ? impl->metrics_endpoint->port() : 0, impl->store->Describe(),
               impl->store->SchemaVersion(), ctx.replica_id, impl->replication->leader(), impl->ca->Fingerprint(),
               TlsReleaseBuffersActive() ? "on" : "off");
  return std::unique_ptr<Controller>(new Controller(std::move(impl)));
}

void Controller::Shutdown(std::chrono::milliseconds grace) {
  Impl& i = *impl_;
  if (i.stopped) return;
  i.stopped = true;
  if (i.dashboard) i.dashboard->Stop();
  if (i.metrics_endpoint) i.metrics_endpoint->Stop();
  if (i.replication) i.replication->Stop();  // stops the fleet module when this replica leads
  i.sessions.CloseAll("controller shutting down");
  auto deadline = std::chrono::system_clock::now() + grace;
  if (i.agent_server) i.agent_server->Shutdown(deadline);
  if (i.admin_server) i.admin_server->Shutdown(deadline);
  if (i.agent_server) i.agent_server->Wait();
  if (i.admin_server) i.admin_server->Wait();
  std::error_code ec;
  std::filesystem::remove(i.admin_socket, ec);
  spdlog::info("event=controller_stopped");
}

int RunServe(const ServeOptions& options) {
  // Block the stop signals before any thread exists so every gRPC thread inherits the mask and
  // only sigtimedwait below receives them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  absl::StatusOr<std::unique_ptr<Controller>> c = Controller::Start(options);
  if (!c.ok()) {
    spdlog::error("event=start_failed error=\"{}\"", std::string(c.status().message()));
    std::fprintf(stderr, "ipfleet-controller serve: %s\n", std::string(c.status().message()).c_str());
    return absl::IsFailedPrecondition(c.status()) ? 3 : 1;
  }
#ifdef IPFLEET_HAVE_SYSTEMD
  sd_notifyf(0, "READY=1\nSTATUS=serving agents on port %d", (*c)->agent_port());
#endif
  // Regenerate the CRL daily (it is valid a week) so bundles always carry a current one.
  constexpr int kCrlRefreshSeconds = 24 * 3600;
  auto next_crl = std::chrono::steady_clock::now() + std::chrono::seconds(kCrlRefreshSeconds);
  while (true) {
    timespec ts{60, 0};
    int sig = sigtimedwait(&set, nullptr, &ts);
    if (sig == SIGTERM || sig == SIGINT) {
      spdlog::info("event=signal signal={}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
      break;
    }
    if (sig == SIGHUP || std::chrono::steady_clock::now() >= next_crl) {
      absl::Status st = (*c)->RefreshCrl();
      if (!st.ok()) spdlog::error("event=crl_refresh_failed error=\"{}\"", std::string(st.message()));
      next_crl = std::chrono::steady_clock::now() + std::chrono::seconds(kCrlRefreshSeconds);
    }
  }
#ifdef IPFLEET_HAVE_SYSTEMD
  sd_notify(0, "STOPPING=1");
#endif
  (*c)->Shutdown();
  c->reset();
  return 0;
}

void AddServeCommand(CLI::App& app, std::function<int()>* action, FleetModuleFactory fleet_factory) {
  auto opts = std::make_shared<ServeOptions>();
  auto level = std::make_shared<std::string>();
  auto no_fsync = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Run the controller: AgentService on --listen (TLS; Enroll with a token, Session with the host "
      "certificate), AdminService on DATA_DIR/admin.sock (mode 0600) and optionally --admin-listen "
      "(TLS with an admin client certificate). Stops cleanly on SIGTERM; notifies systemd when ready.");
  cmd->add_option("--data-dir", opts->data_dir, "Controller data directory (made by `ipfleet-controller init`)")
      ->capture_default_str();
  cmd->add_option("--listen", opts->listen, "AgentService address HOST:PORT (loopback by default)")
      ->capture_default_str();
  cmd->add_option("--admin-listen", opts->admin_listen,
                  "Also serve the AdminService on this TCP address (requires an admin client certificate, "
                  "see `ipfleet cert issue --kind admin`)");
  cmd->add_option("--advertise", opts->advertise,
                  "HOST:PORT agents use to reach the controller (printed in enroll commands; default: the "
                  "--listen address, or the first IP of the TLS certificate when listening on a wildcard)");
  cmd->add_option("--dashboard", opts->dashboard,
                  "Serve the read-only web dashboard over HTTPS on ADDRESS:PORT (e.g. 127.0.0.1:8443; off by "
                  "default). Clients need an admin certificate or a token from `ipfleet dashboard token`; loopback "
                  "clients are let in without (see --dashboard-require-auth)");
  auto require_auth = std::make_shared<bool>(false);
  cmd->add_flag("--dashboard-require-auth", *require_auth,
                "Also ask loopback clients of the dashboard for a certificate or token");
  cmd->add_option("--metrics", opts->metrics_listen,
                  "Serve Prometheus /metrics over plain HTTP on a loopback ADDRESS:PORT (e.g. 127.0.0.1:9478; off by "
                  "default; the dashboard serves /metrics too)");
  cmd->add_option("--inventory", opts->inventory,
                  "Inventory: sqlite (default: DATA_DIR/inventory.db), sqlite:PATH, or postgresql://USER@HOST:PORT/DB "
                  "shared by several replicas (password in ~/.pgpass, not here). Default: DATA_DIR/inventory.url if "
                  "present, else sqlite");
  cmd->add_option("--replica-id", opts->replica_id,
                  "Name of this replica among controllers sharing a PostgreSQL inventory (default HOSTNAME:AGENT-PORT)");
  cmd->add_flag("--no-fsync", *no_fsync,
                "Do not fsync the inventory on every commit (survives a controller crash, not a power loss)");
  cmd->add_option("--log-level", *level, "trace, debug, info, warn, error (default: IPFLEET_LOG_LEVEL or info)");
  cmd->callback([opts, level, no_fsync, require_auth, fleet_factory, action] {
    *action = [opts, level, no_fsync, require_auth, fleet_factory] {
      // main() already set up the logger (quiet, for the offline commands); a daemon logs at info
      // unless told otherwise.
      if (!level->empty()) {
        spdlog::set_level(spdlog::level::from_str(*level));
      } else if (!std::getenv("IPFLEET_LOG_LEVEL")) {
        spdlog::set_level(spdlog::level::info);
      }
      ServeOptions o = *opts;
      o.fsync_every_commit = !*no_fsync;
      o.dashboard_anonymous_loopback = !*require_auth;
      o.fleet_factory = fleet_factory;
      return RunServe(o);
    };
  });
}

}  // namespace ipfleet::controller
