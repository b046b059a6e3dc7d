#include "output/tls_util.h"

#include <cerrno>
#include <cstdint>

#include <sys/socket.h>

#include <openssl/err.h>

namespace sidetap::output::tls {

namespace {

struct BioMethodDeleter {
    void operator()(BIO_METHOD* method) const { BIO_meth_free(method); }
};
using BioMethodPtr = std::unique_ptr<BIO_METHOD, BioMethodDeleter>;

int fd_of(BIO* bio) { return static_cast<int>(reinterpret_cast<std::intptr_t>(BIO_get_data(bio))); }

int bio_write(BIO* bio, const char* data, int size) {
    BIO_clear_retry_flags(bio);
    for (;;) {
        const ssize_t n = ::send(fd_of(bio), data, static_cast<std::size_t>(size), MSG_NOSIGNAL);
        if (n >= 0) return static_cast<int>(n);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_write(bio);
        return -1;
    }
}

int bio_read(BIO* bio, char* out, int size) {
    BIO_clear_retry_flags(bio);
    for (;;) {
        const ssize_t n = ::recv(fd_of(bio), out, static_cast<std::size_t>(size), 0);
        if (n > 0) return static_cast<int>(n);
        if (n == 0) {
            // Lets OpenSSL tell "EOF without close_notify" from other errors.
            BIO_set_flags(bio, BIO_FLAGS_IN_EOF);
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) BIO_set_retry_read(bio);
        return -1;
    }
}

long bio_ctrl(BIO* bio, int cmd, long /*num*/, void* ptr) {
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_EOF: return BIO_test_flags(bio, BIO_FLAGS_IN_EOF) != 0 ? 1 : 0;
    case BIO_C_GET_FD:
        if (ptr != nullptr) *static_cast<int*>(ptr) = fd_of(bio);
        return fd_of(bio);
    default: return 0;
    }
}

int bio_create(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
}

}  // namespace

const BIO_METHOD* socket_bio_method() {
    static const BioMethodPtr method = [] {
        BioMethodPtr m(BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                    "sidetap socket"));
        if (!m || BIO_meth_set_write(m.get(), bio_write) != 1 || BIO_meth_set_read(m.get(), bio_read) != 1 ||
            BIO_meth_set_ctrl(m.get(), bio_ctrl) != 1 || BIO_meth_set_create(m.get(), bio_create) != 1) {
            return BioMethodPtr();
        }
        return m;
    }();
    return method.get();
}

std::string take_openssl_error(unsigned long* code) {
    unsigned long first = 0;
    for (unsigned long e = ERR_get_error(); e != 0; e = ERR_get_error()) {
        if (first == 0) first = e;
    }
    if (code != nullptr) *code = first;
    if (first == 0) return {};
    if (const char* reason = ERR_reason_error_string(first); reason != nullptr) return reason;
    char buf[256];
    ERR_error_string_n(first, buf, sizeof buf);
    return buf;
}


bool attach_socket(SSL* ssl, int fd) {
    const BIO_METHOD* method = socket_bio_method();
    if (method == nullptr) return false;
    BIO* bio = BIO_new(method);
    if (bio == nullptr) return false;
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)));
    SSL_set_bio(ssl, bio, bio);  // the SSL owns the BIO now
    return true;
}

int refuse_passphrase(char* /*buf*/, int /*size*/, int /*rwflag*/, void* /*userdata*/) { return 0; }

}  // namespace sidetap::output::tls
