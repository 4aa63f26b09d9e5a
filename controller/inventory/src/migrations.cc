// Versioned schema migrations, one list per database with the same versions in both: version N
// means the same tables and columns in SQLite and in PostgreSQL. SQLite keeps the version in
// PRAGMA user_version, PostgreSQL in the ipfleet_schema table; every later migration runs in a
// transaction together with the version bump, so a crash mid-migration leaves the previous
// version intact.
//
// Append only: never edit a migration that has shipped; add a new one at the end of both lists.
#include "migrations.h"

namespace ipfleet::inventory {

const std::vector<Migration>& SqliteMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "initial schema", R"sql(
CREATE TABLE hosts (
  name TEXT PRIMARY KEY,
  created_unix INTEGER NOT NULL,
  cert_serial TEXT NOT NULL DEFAULT '',
  cert_not_after_unix INTEGER NOT NULL DEFAULT 0,
  enrolled INTEGER NOT NULL DEFAULT 0,
  last_seen_unix INTEGER NOT NULL DEFAULT 0,
  agent_version TEXT NOT NULL DEFAULT '',
  applied_bundle_version INTEGER NOT NULL DEFAULT 0,
  desired_bundle_version INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Outer addresses (kind 'ip') and DNS names (kind 'dns'), in the operator's order.
CREATE TABLE host_addresses (
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('ip', 'dns')),
  position INTEGER NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (host, kind, position)
) STRICT;

CREATE TABLE host_labels (
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (host, key)
) STRICT;

-- Only the SHA-256 of a token is ever stored.
CREATE TABLE enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY,
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  created_unix INTEGER NOT NULL,
  expires_unix INTEGER NOT NULL,
  used INTEGER NOT NULL DEFAULT 0,
  used_unix INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX enrollment_tokens_host ON enrollment_tokens(host);

CREATE TABLE certificates (
  serial TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  not_before_unix INTEGER NOT NULL,
  not_after_unix INTEGER NOT NULL,
  ip_addresses TEXT NOT NULL,  -- JSON array
  dns_names TEXT NOT NULL,     -- JSON array
  pem TEXT NOT NULL
) STRICT;
CREATE INDEX certificates_name ON certificates(name);

-- No foreign key: certificates issued offline by `ipfleet-controller ca issue` are revocable too.
CREATE TABLE revocations (
  serial TEXT PRIMARY KEY,
  revoked_unix INTEGER NOT NULL,
  reason TEXT NOT NULL
) STRICT;

CREATE TABLE health (
  host TEXT PRIMARY KEY REFERENCES hosts(name) ON DELETE CASCADE,
  at_unix INTEGER NOT NULL,
  bundle_version INTEGER NOT NULL,
  tunnels_up INTEGER NOT NULL,
  tunnels_total INTEGER NOT NULL,
  stale_sas INTEGER NOT NULL,
  forced_renegotiations INTEGER NOT NULL,
  report BLOB NOT NULL
) STRICT;

CREATE TABLE proposals (
  name TEXT PRIMARY KEY,
  spec BLOB NOT NULL
) STRICT;

CREATE TABLE external_peers (
  name TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  identity TEXT NOT NULL,
  auth INTEGER NOT NULL,
  spec BLOB NOT NULL
) STRICT;

CREATE TABLE tunnels (
  name TEXT PRIMARY KEY,
  left_end TEXT NOT NULL,
  right_end TEXT NOT NULL,
  right_is_external INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  auth INTEGER NOT NULL,
  proposal TEXT NOT NULL,
  spec BLOB NOT NULL
) STRICT;
CREATE INDEX tunnels_left ON tunnels(left_end);
CREATE INDEX tunnels_right ON tunnels(right_end);

CREATE TABLE generations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  created_unix INTEGER NOT NULL,
  source TEXT NOT NULL,
  snapshot BLOB NOT NULL,
  comment TEXT NOT NULL
) STRICT;

CREATE TABLE bundles (
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  version INTEGER NOT NULL,
  generation INTEGER NOT NULL,
  created_unix INTEGER NOT NULL,
  signed_bundle BLOB NOT NULL,
  PRIMARY KEY (host, version)
) STRICT;

CREATE TABLE rollouts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  generation INTEGER NOT NULL,
  state INTEGER NOT NULL,
  current_wave INTEGER NOT NULL,
  waves INTEGER NOT NULL,
  canary_percent INTEGER NOT NULL,
  wave_size INTEGER NOT NULL,
  wave_timeout_seconds INTEGER NOT NULL,
  started_unix INTEGER NOT NULL,
  finished_unix INTEGER NOT NULL,
  error TEXT NOT NULL
) STRICT;

CREATE TABLE rollout_hosts (
  rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  wave INTEGER NOT NULL,
  version INTEGER NOT NULL,
  state INTEGER NOT NULL,
  error TEXT NOT NULL,
  updated_unix INTEGER NOT NULL,
  PRIMARY KEY (rollout_id, host)
) STRICT;

CREATE TABLE commands (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  kind INTEGER NOT NULL,
  tunnel TEXT NOT NULL,
  peer TEXT NOT NULL,
  issued_unix INTEGER NOT NULL,
  state INTEGER NOT NULL,
  delivered_unix INTEGER NOT NULL,
  finished_unix INTEGER NOT NULL,
  result BLOB NOT NULL
) STRICT;
CREATE INDEX commands_host ON commands(host, id);

CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  at_unix INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  ok INTEGER NOT NULL
) STRICT;
)sql"},
      {2, "replicas: who holds each session, who leads, the bus between them", R"sql(
ALTER TABLE hosts ADD COLUMN replica TEXT NOT NULL DEFAULT '';

CREATE TABLE replicas (
  id TEXT PRIMARY KEY,
  endpoint TEXT NOT NULL,
  started_unix INTEGER NOT NULL,
  heartbeat_unix INTEGER NOT NULL,
  leader INTEGER NOT NULL
) STRICT;

CREATE TABLE bus (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at_unix INTEGER NOT NULL,
  origin TEXT NOT NULL,
  host TEXT NOT NULL,
  kind TEXT NOT NULL,
  payload BLOB NOT NULL
) STRICT;
CREATE INDEX bus_at ON bus(at_unix);
)sql"},
  };
  return kMigrations;
}

// The same schema in PostgreSQL's types: BIGINT for SQLite's 64-bit INTEGER, BYTEA for BLOB,
// identity columns for AUTOINCREMENT; 0/1 integers stay integers so every query is shared.
const std::vector<Migration>& PostgresMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "initial schema", R"sql(
CREATE TABLE hosts (
  name TEXT PRIMARY KEY,
  created_unix BIGINT NOT NULL,
  cert_serial TEXT NOT NULL DEFAULT '',
  cert_not_after_unix BIGINT NOT NULL DEFAULT 0,
  enrolled BIGINT NOT NULL DEFAULT 0,
  last_seen_unix BIGINT NOT NULL DEFAULT 0,
  agent_version TEXT NOT NULL DEFAULT '',
  applied_bundle_version BIGINT NOT NULL DEFAULT 0,
  desired_bundle_version BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE host_addresses (
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  kind TEXT NOT NULL CHECK (kind IN ('ip', 'dns')),
  position BIGINT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (host, kind, position)
);
CREATE TABLE host_labels (
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (host, key)
);
CREATE TABLE enrollment_tokens (
  token_sha256 TEXT PRIMARY KEY,
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  created_unix BIGINT NOT NULL,
  expires_unix BIGINT NOT NULL,
  used BIGINT NOT NULL DEFAULT 0,
  used_unix BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX enrollment_tokens_host ON enrollment_tokens(host);
CREATE TABLE certificates (
  seq BIGINT GENERATED ALWAYS AS IDENTITY,  -- insertion order (SQLite's rowid)
  serial TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  not_before_unix BIGINT NOT NULL,
  not_after_unix BIGINT NOT NULL,
  ip_addresses TEXT NOT NULL,
  dns_names TEXT NOT NULL,
  pem TEXT NOT NULL
);
CREATE INDEX certificates_name ON certificates(name);
CREATE TABLE revocations (
  serial TEXT PRIMARY KEY,
  revoked_unix BIGINT NOT NULL,
  reason TEXT NOT NULL
);
CREATE TABLE health (
  host TEXT PRIMARY KEY REFERENCES hosts(name) ON DELETE CASCADE,
  at_unix BIGINT NOT NULL,
  bundle_version BIGINT NOT NULL,
  tunnels_up BIGINT NOT NULL,
  tunnels_total BIGINT NOT NULL,
  stale_sas BIGINT NOT NULL,
  forced_renegotiations BIGINT NOT NULL,
  report BYTEA NOT NULL
);
CREATE TABLE proposals (
  name TEXT PRIMARY KEY,
  spec BYTEA NOT NULL
);
CREATE TABLE external_peers (
  name TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  identity TEXT NOT NULL,
  auth BIGINT NOT NULL,
  spec BYTEA NOT NULL
);
CREATE TABLE tunnels (
  name TEXT PRIMARY KEY,
  left_end TEXT NOT NULL,
  right_end TEXT NOT NULL,
  right_is_external BIGINT NOT NULL,
  mode BIGINT NOT NULL,
  auth BIGINT NOT NULL,
  proposal TEXT NOT NULL,
  spec BYTEA NOT NULL
);
CREATE INDEX tunnels_left ON tunnels(left_end);
CREATE INDEX tunnels_right ON tunnels(right_end);
CREATE TABLE generations (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  created_unix BIGINT NOT NULL,
  source TEXT NOT NULL,
  snapshot BYTEA NOT NULL,
  comment TEXT NOT NULL
);
CREATE TABLE bundles (
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  version BIGINT NOT NULL,
  generation BIGINT NOT NULL,
  created_unix BIGINT NOT NULL,
  signed_bundle BYTEA NOT NULL,
  PRIMARY KEY (host, version)
);
CREATE TABLE rollouts (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  generation BIGINT NOT NULL,
  state BIGINT NOT NULL,
  current_wave BIGINT NOT NULL,
  waves BIGINT NOT NULL,
  canary_percent BIGINT NOT NULL,
  wave_size BIGINT NOT NULL,
  wave_timeout_seconds BIGINT NOT NULL,
  started_unix BIGINT NOT NULL,
  finished_unix BIGINT NOT NULL,
  error TEXT NOT NULL
);
CREATE TABLE rollout_hosts (
  rollout_id BIGINT NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  wave BIGINT NOT NULL,
  version BIGINT NOT NULL,
  state BIGINT NOT NULL,
  error TEXT NOT NULL,
  updated_unix BIGINT NOT NULL,
  PRIMARY KEY (rollout_id, host)
);
CREATE TABLE commands (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  host TEXT NOT NULL REFERENCES hosts(name) ON DELETE CASCADE,
  kind BIGINT NOT NULL,
  tunnel TEXT NOT NULL,
  peer TEXT NOT NULL,
  issued_unix BIGINT NOT NULL,
  state BIGINT NOT NULL,
  delivered_unix BIGINT NOT NULL,
  finished_unix BIGINT NOT NULL,
  result BYTEA NOT NULL
);
CREATE INDEX commands_host ON commands(host, id);
CREATE TABLE audit_log (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  at_unix BIGINT NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  detail TEXT NOT NULL,
  ok BIGINT NOT NULL
);
)sql"},
      {2, "replicas: who holds each session, who leads, the bus between them", R"sql(
ALTER TABLE hosts ADD COLUMN replica TEXT NOT NULL DEFAULT '';
CREATE TABLE replicas (
  id TEXT PRIMARY KEY,
  endpoint TEXT NOT NULL,
  started_unix BIGINT NOT NULL,
  heartbeat_unix BIGINT NOT NULL,
  leader BIGINT NOT NULL
);
CREATE TABLE bus (
  seq BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  at_unix BIGINT NOT NULL,
  origin TEXT NOT NULL,
  host TEXT NOT NULL,
  kind TEXT NOT NULL,
  payload BYTEA NOT NULL
);
CREATE INDEX bus_at ON bus(at_unix);
)sql"},
  };
  return kMigrations;
}

}  // namespace ipfleet::inventory
