// ipfleet dashboard token
#include <cstdio>

#include "commands.h"
#include "output.h"

namespace ipfleet::cli {

void AddDashboardCommands(CLI::App& app, State& state) {
  CLI::App* dash = app.add_subcommand("dashboard", "The controller's web dashboard (`serve --dashboard`)");
  dash->require_subcommand(1);
  auto ttl = std::make_shared<uint32_t>(0);
  CLI::App* c = dash->add_subcommand(
      "token", "Print a login token and the URL that logs a browser in with it (the token is shown only here)");
  c->add_option("--ttl", *ttl, "Token lifetime in seconds (default 8 hours, at most 7 days)");
  c->callback([&state, ttl] {
    v1::CreateDashboardTokenRequest req;
    req.set_ttl_seconds(*ttl);
    Client client(state.global);
    v1::CreateDashboardTokenResponse resp;
    grpc::Status st = client.stub().CreateDashboardToken(client.Context().get(), req, &resp);
    if (!st.ok()) {
      state.exit_code = client.Fail("dashboard token", st);
      return;
    }
    if (state.global.json()) {
      PrintJson({{"token", resp.token()}, {"expires_unix", resp.expires_unix()}, {"login_url", resp.login_url()}});
      return;
    }
    std::printf("Dashboard login (valid until %s):\n  %s\n", FormatTime(resp.expires_unix()).c_str(),
                resp.login_url().c_str());
    std::printf("Token (for `Authorization: Bearer`, e.g. a Prometheus scrape):\n  %s\n", resp.token().c_str());
  });
}

}  // namespace ipfleet::cli
