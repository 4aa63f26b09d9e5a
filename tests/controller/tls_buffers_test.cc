// The SSL_new interposer of the controller (controller/daemon/src/tls_buffers.cc) is what gRPC's
// libraries bind to, and SSL objects made through that binding have SSL_MODE_RELEASE_BUFFERS.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <openssl/ssl.h>

#include <memory>

#include "ipfleet/controller/daemon/tls_buffers.h"

namespace ipfleet::testing {
namespace {

TEST(TlsBuffersTest, InterposerIsBoundInTheGlobalScope) { EXPECT_TRUE(controller::TlsReleaseBuffersActive()); }

TEST(TlsBuffersTest, SslObjectsMadeThroughTheGlobalBindingReleaseTheirBuffers) {
  // Resolve SSL_new the way libgrpc's PLT does, not through this file's own direct call.
  using Fn = SSL* (*)(SSL_CTX*);
  auto ssl_new = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "SSL_new"));
  ASSERT_NE(ssl_new, nullptr);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_method()), SSL_CTX_free);
  ASSERT_NE(ctx, nullptr);
  long before = controller::TlsObjectsWithReleasedBuffers();
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(ssl_new(ctx.get()), SSL_free);
  ASSERT_NE(ssl, nullptr);
  EXPECT_NE(SSL_get_mode(ssl.get()) & SSL_MODE_RELEASE_BUFFERS, 0);
  EXPECT_EQ(controller::TlsObjectsWithReleasedBuffers(), before + 1);
}

}  // namespace
}  // namespace ipfleet::testing
