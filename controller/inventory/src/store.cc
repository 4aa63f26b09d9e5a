#include <absl/strings/str_cat.h>

#include "ipfleet/controller/inventory/store.h"

namespace ipfleet::inventory {

absl::Status CheckEnrollmentToken(const absl::StatusOr<EnrollmentToken>& t, const std::string& host,
                                  int64_t now) {
  const std::string fresh = absl::StrCat("; get a new one with `ipfleet host token ", host, "`");
  if (absl::IsNotFound(t.status())) {
    return absl::NotFoundError(
        absl::StrCat("unknown enrollment token for host '", host, "'; check it was copied whole", fresh));
  }
  if (!t.ok()) return t.status();
  if (t->host != host) {
    return absl::PermissionDeniedError(absl::StrCat(
        "enrollment token was issued for another host, not '", host,
        "'; enroll with the host name given to `ipfleet host add`"));
  }
  if (t->used) {
    return absl::FailedPreconditionError(
        absl::StrCat("enrollment token for '", host, "' was already used", fresh));
  }
  if (t->expires_unix <= now) {
    return absl::FailedPreconditionError(absl::StrCat("enrollment token for '", host, "' expired ",
                                                      now - t->expires_unix, " s ago", fresh));
  }
  return absl::OkStatus();
}

}  // namespace ipfleet::inventory
