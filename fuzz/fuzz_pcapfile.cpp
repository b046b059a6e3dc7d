// Fuzz target: capture::PcapFileSource — the pcap and pcapng file parser
// (file header, records, section/interface/packet blocks, options,
// timestamps), as `sidetap replay` runs it.
//
// Input: byte 0 bit 0 picks how the bytes reach the parser: 0 = a regular
// file (a memfd, opened by path through /proc/self/fd, so the file size is
// known), 1 = a pipe (size unknown, reads may stop anywhere). The rest is
// the capture file.
//
// Checks: the constructor either succeeds or throws util::FatalError with
// a message; every packet's bytes are readable and at most
// kMaxCaptureLength, original_length >= captured length; the parser never
// claims to have read more than the input; End/Error are sticky and an
// Error names the file. Run with -malloc_limit_mb (run_fuzzers.sh sets 64):
// a length field that sized an allocation beyond the input would be
// reported as a malloc-limit crash.
#include "fuzz_common.h"

#include "capture/pcap_file_source.h"
#include "util/error.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

using namespace sidetap;

namespace {

bool write_all(int fd, std::span<const std::uint8_t> bytes) {
    while (!bytes.empty()) {
        const ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n <= 0) return false;
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1 || size > 65536) return 0;
    const bool use_pipe = (data[0] & 1) != 0;
    const std::span<const std::uint8_t> file(data + 1, size - 1);

    int fds[2] = {-1, -1};
    std::string path;
    if (use_pipe) {
        if (::pipe2(fds, O_CLOEXEC) != 0) return 0;
        (void)::fcntl(fds[1], F_SETPIPE_SZ, 1 << 17);  // the whole input fits, then EOF
        if (!write_all(fds[1], file)) {
            ::close(fds[0]);
            ::close(fds[1]);
            return 0;
        }
        ::close(fds[1]);
        path = "/proc/self/fd/" + std::to_string(fds[0]);
    } else {
        fds[0] = ::memfd_create("fuzz-capture", MFD_CLOEXEC);
        if (fds[0] < 0) return 0;
        if (!write_all(fds[0], file)) {
            ::close(fds[0]);
            return 0;
        }
        path = "/proc/self/fd/" + std::to_string(fds[0]);
    }

    try {
        capture::PcapFileSource source(path);
        capture::Packet packet;
        capture::PacketSource::Status status;
        std::uint64_t packets = 0;
        while ((status = source.next(packet)) == capture::PacketSource::Status::Packet) {
            ++packets;
            FUZZ_CHECK(packet.data.size() <= capture::PcapFileSource::kMaxCaptureLength);
            FUZZ_CHECK(packet.original_length >= packet.data.size());
            (void)fuzz::touch(packet.data);
            FUZZ_CHECK(source.bytes_read() <= file.size());
        }
        FUZZ_CHECK(source.packets() == packets);
        FUZZ_CHECK(source.bytes_read() <= file.size());
        if (status == capture::PacketSource::Status::Error) {
            FUZZ_CHECK(source.error().rfind(path + ": ", 0) == 0);
        } else {
            FUZZ_CHECK(source.error().empty());
        }
        FUZZ_CHECK(source.next(packet) == status);  // sticky
        if (!use_pipe) FUZZ_CHECK(source.bytes_total() == file.size());
    } catch (const util::FatalError& e) {
        FUZZ_CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
    ::close(fds[0]);
    return 0;
}
