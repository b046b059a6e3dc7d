// Finding the processes the TLS probes follow and the TLS libraries they map,
// from /proc (no libbpf here: unit-tested in every build).
//
//  - A process is identified by its PID and its start time (field 22 of
//    /proc/PID/stat, clock ticks since boot): a PID reused by a new process
//    is a different process.
//  - Names are matched like pgrep: the process's comm (/proc/PID/comm, at
//    most 15 characters); a longer name matches when its first 15
//    characters are the comm and the executable's file name is the name.
//  - TLS libraries: the files a process maps whose name starts with
//    libssl.so (OpenSSL) or libgnutls.so (GnuTLS), each once, read from
//    /proc/PID/maps. The probes attach to the file the process maps, through
//    /proc/PID/root, so that a server in a container (another mount
//    namespace) is probed in its own library. A library replaced on disk
//    after the process mapped it shows as "(deleted)".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sidetap::capture::tls {

enum class Library : std::uint8_t { OpenSsl, GnuTls };
const char* library_name(Library library);

struct MappedLibrary {
    Library library = Library::OpenSsl;
    std::string path;      // as the process sees it (in its mount namespace)
    bool deleted = false;  // replaced or removed on disk since it was mapped
};

// The TLS libraries in the text of /proc/PID/maps.
std::vector<MappedLibrary> tls_libraries_in_maps(std::string_view maps);

struct ProcessInfo {
    int pid = 0;
    std::string comm;
    std::uint64_t start_time = 0;
};

// comm and start time from the text of /proc/PID/stat (the comm may hold
// spaces and parentheses: it ends at the last ')').
std::optional<ProcessInfo> parse_stat(int pid, std::string_view stat);

// The same from /proc/PID/stat; nullopt when the process is gone.
std::optional<ProcessInfo> read_process(int pid);

// Whether the process is still the one described (same PID, same start).
bool still_running(const ProcessInfo& process);

// Every numeric entry of /proc.
std::vector<int> list_pids();

// The processes of a cgroup v2 directory and of every cgroup below it.
std::vector<int> cgroup_pids(const std::string& directory);

// A cgroup v2 directory as --cgroup names it: absolute, or relative to the
// cgroup v2 mount of this mount namespace (from /proc/self/mountinfo; the
// path as given when there is none).
std::string cgroup_directory(const std::string& path);

// pgrep-like name match (see above).
bool name_matches(const ProcessInfo& process, const std::string& name);

// /proc/PID/maps as text; nullopt (errno kept) when it cannot be read.
std::optional<std::string> read_maps(int pid);

}  // namespace sidetap::capture::tls
