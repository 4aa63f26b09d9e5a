// Per-connection TLS memory. gRPC 1.51 creates every OpenSSL SSL object itself and gives no way to
// set its mode, and OpenSSL keeps a ~17 KiB read buffer and a ~17 KiB write buffer per SSL object
// for the life of the connection unless SSL_MODE_RELEASE_BUFFERS is set. With 10,000 mostly idle
// agent sessions that alone is ~340 MiB of the controller's RSS. This definition of SSL_new in the
// controller's executable is found before libssl's (ELF symbol interposition: the executable comes
// first in the lookup order, and ld exports it because libgrpc references SSL_new), calls the
// real one and sets SSL_MODE_RELEASE_BUFFERS: OpenSSL then frees the buffers whenever a record has
// been fully read or written and allocates them again on the next one.
//
// Review notes (2026-12-04): libgrpc references SSL_new@OPENSSL_3.0.0; an unversioned definition
// in the executable (which has no version definitions) satisfies that reference, so the binding
// works, but it silently does not when the executable stops exporting the symbol, hence
// TlsReleaseBuffersActive() (logged at start, checked by tests/controller/tls_buffers_test). The
// mode also applies to client-side SSL objects in the same process (tests, the benchmark's
// agents): harmless. Shrinking gRPC's BIO pair (2 x 17 KiB, also interposable) was measured and
// left out: RSS moved by 3 KiB per session (the buffers are mostly never touched), while an
// outgoing buffer smaller than one TLS record makes gRPC's SSL_write fail.
#include <dlfcn.h>
#include <openssl/ssl.h>

#include <atomic>

#include "ipfleet/controller/daemon/tls_buffers.h"

namespace {
std::atomic<long> g_ssl_objects{0};
}

extern "C" SSL* SSL_new(SSL_CTX* ctx) {
  using Fn = SSL* (*)(SSL_CTX*);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "SSL_new"));
  if (real == nullptr) return nullptr;  // cannot happen while libssl is loaded
  SSL* ssl = real(ctx);
  if (ssl != nullptr) {
    SSL_set_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    g_ssl_objects.fetch_add(1, std::memory_order_relaxed);
  }
  return ssl;
}

namespace ipfleet::controller {
long TlsObjectsWithReleasedBuffers() { return g_ssl_objects.load(std::memory_order_relaxed); }

bool TlsReleaseBuffersActive() {
  void* global = dlsym(RTLD_DEFAULT, "SSL_new");
  return global == reinterpret_cast<void*>(&::SSL_new);
}
}  // namespace ipfleet::controller
