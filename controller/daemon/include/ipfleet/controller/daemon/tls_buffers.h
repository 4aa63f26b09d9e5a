// SSL_MODE_RELEASE_BUFFERS on every OpenSSL SSL object of the process (see src/tls_buffers.cc).
#pragma once

namespace ipfleet::controller {

// Whether the interposed SSL_new is the one gRPC's libraries bind to: SSL_new looked up in the
// global scope (as libgrpc's PLT resolves it) is ours. False when the executable does not export
// it (e.g. linked with -Bsymbolic or libssl loaded with RTLD_DEEPBIND); then idle TLS sessions
// keep OpenSSL's ~34 KiB of record buffers each. Referencing this also makes sure the object
// holding the interposer is linked into every executable that uses the daemon library.
bool TlsReleaseBuffersActive();

// How many SSL objects got SSL_MODE_RELEASE_BUFFERS so far (clients in the same process included).
long TlsObjectsWithReleasedBuffers();

}  // namespace ipfleet::controller
