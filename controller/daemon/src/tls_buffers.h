#pragma once

namespace ipfleet::controller {
// How many SSL objects got SSL_MODE_RELEASE_BUFFERS (see tls_buffers.cc); referencing it also
// makes sure the interposing SSL_new is linked into every executable using the daemon library.
long TlsObjectsWithReleasedBuffers();
}  // namespace ipfleet::controller
