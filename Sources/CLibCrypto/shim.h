// OpenSSL's libcrypto, for HMAC-SHA256 only (CeleriacHMAC wraps it; no other module imports this).
// libcrypto is already on every machine that has librabbitmq with TLS (libssl-dev), so this costs no new
// dependency and no build time, unlike compiling swift-crypto's BoringSSL copy.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
