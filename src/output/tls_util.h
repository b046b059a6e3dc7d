// OpenSSL pieces shared by the TLS client (tls:// outputs) and the TLS
// listener (`sidetap listen`): RAII handles, a socket BIO that never raises
// SIGPIPE, and error text.
#pragma once

#include <memory>
#include <string>

#include <openssl/bio.h>
#include <openssl/ssl.h>

namespace sidetap::output::tls {

struct SslCtxDeleter {
    void operator()(SSL_CTX* ctx) const { SSL_CTX_free(ctx); }
};
struct SslDeleter {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
};
struct BioDeleter {
    void operator()(BIO* bio) const { BIO_free(bio); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxDeleter>;
using SslPtr = std::unique_ptr<SSL, SslDeleter>;
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

// OpenSSL's socket BIO writes with write(2), which raises SIGPIPE on a dead
// peer. This one uses send(MSG_NOSIGNAL), so the library never depends on
// the process ignoring SIGPIPE. nullptr only if OpenSSL cannot allocate it.
const BIO_METHOD* socket_bio_method();

// Gives `ssl` a socket BIO over `fd` (not owned). False on allocation failure.
bool attach_socket(SSL* ssl, int fd);

// The earliest queued OpenSSL error is the root cause ("certificate verify
// failed", "No such file or directory"); the rest are call-site context.
// Drains this thread's error queue; `code` gets the packed error code.
std::string take_openssl_error(unsigned long* code = nullptr);

// Passphrase callback that refuses: keys must not be encrypted (no prompt
// from a daemon).
int refuse_passphrase(char* buf, int size, int rwflag, void* userdata);

}  // namespace sidetap::output::tls
