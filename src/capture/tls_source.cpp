#include "capture/tls_source.h"

#include "util/error.h"

#ifdef SIDETAP_HAVE_TLS_PROBES
#include "capture/tls_probes.h"
#endif

namespace sidetap::capture {

bool tls_probes_supported() {
#ifdef SIDETAP_HAVE_TLS_PROBES
    return true;
#else
    return false;
#endif
}

const char* tls_probes_unsupported_reason() {
#ifdef SIDETAP_HAVE_TLS_PROBES
    return "";
#else
    return SIDETAP_TLS_PROBES_REASON;
#endif
}

std::unique_ptr<StreamSource> open_tls_source(const TlsCaptureOptions& options) {
#ifdef SIDETAP_HAVE_TLS_PROBES
    return std::make_unique<TlsProbeSource>(options);
#else
    (void)options;
    throw util::FatalError(std::string("--tls-pid/--tls-process: this sidetap has no TLS probes (") +
                               SIDETAP_TLS_PROBES_REASON + ")",
                           util::kExitUsage);
#endif
}

}  // namespace sidetap::capture
