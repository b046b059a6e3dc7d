#include "capture/tls_processes.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <sstream>

namespace sidetap::capture::tls {

namespace {

// The whole file; nullopt with errno set when it cannot be read.
std::optional<std::string> read_text(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string text;
    char buffer[16384];
    for (;;) {
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            errno = err;
            return std::nullopt;
        }
        if (n == 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return text;
}

std::string_view file_name(std::string_view path) {
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

}  // namespace

const char* library_name(Library library) { return library == Library::OpenSsl ? "OpenSSL" : "GnuTLS"; }

std::vector<MappedLibrary> tls_libraries_in_maps(std::string_view maps) {
    std::vector<MappedLibrary> out;
    while (!maps.empty()) {
        const auto nl = maps.find('\n');
        std::string_view line = maps.substr(0, nl);
        maps = nl == std::string_view::npos ? std::string_view{} : maps.substr(nl + 1);
        // address perms offset dev inode path: the path starts at the first '/'
        // after the five fields.
        const auto slash = line.find('/');
        if (slash == std::string_view::npos) continue;
        std::string_view path = line.substr(slash);
        bool deleted = false;
        constexpr std::string_view kDeleted = " (deleted)";
        if (path.size() > kDeleted.size() && path.substr(path.size() - kDeleted.size()) == kDeleted) {
            path.remove_suffix(kDeleted.size());
            deleted = true;
        }
        const auto name = file_name(path);
        std::optional<Library> library;
        if (name.substr(0, 9) == "libssl.so") library = Library::OpenSsl;
        if (name.substr(0, 12) == "libgnutls.so") library = Library::GnuTls;
        if (!library) continue;
        bool seen = false;
        for (const auto& m : out) seen = seen || (m.library == *library && m.path == path);
        if (!seen) out.push_back({*library, std::string(path), deleted});
    }
    return out;
}

std::optional<ProcessInfo> parse_stat(int pid, std::string_view stat) {
    const auto open = stat.find('(');
    const auto close = stat.rfind(')');
    if (open == std::string_view::npos || close == std::string_view::npos || close < open) return std::nullopt;
    ProcessInfo p;
    p.pid = pid;
    p.comm.assign(stat.substr(open + 1, close - open - 1));
    // Fields after the comm: 3 (state) ... 22 (starttime).
    std::string_view rest = stat.substr(close + 1);
    int field = 2;
    while (!rest.empty()) {
        while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
        const auto sp = rest.find(' ');
        const std::string_view value = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
        if (value.empty()) break;
        if (++field == 22) {
            std::uint64_t v = 0;
            for (char c : value) {
                if (c < '0' || c > '9') return std::nullopt;
                v = v * 10 + static_cast<std::uint64_t>(c - '0');
            }
            p.start_time = v;
            return p;
        }
    }
    return std::nullopt;
}

std::optional<ProcessInfo> read_process(int pid) {
    const auto text = read_text("/proc/" + std::to_string(pid) + "/stat");
    if (!text) return std::nullopt;
    return parse_stat(pid, *text);
}

bool still_running(const ProcessInfo& process) {
    const auto now = read_process(process.pid);
    return now && now->start_time == process.start_time;
}

std::vector<int> list_pids() {
    std::vector<int> pids;
    DIR* dir = ::opendir("/proc");
    if (!dir) return pids;
    while (const dirent* e = ::readdir(dir)) {
        char* end = nullptr;
        const long v = std::strtol(e->d_name, &end, 10);
        if (end != e->d_name && *end == '\0' && v > 0 && v <= INT_MAX) pids.push_back(static_cast<int>(v));
    }
    ::closedir(dir);
    return pids;
}

std::vector<int> cgroup_pids(const std::string& directory) {
    std::vector<int> pids;
    std::vector<std::string> todo{directory};
    // Bounded: a cgroup tree has a finite number of directories; cycles are
    // impossible in cgroupfs.
    while (!todo.empty()) {
        const std::string d = todo.back();
        todo.pop_back();
        if (const auto procs = read_text(d + "/cgroup.procs")) {
            std::istringstream in(*procs);
            int pid = 0;
            while (in >> pid) pids.push_back(pid);
        }
        DIR* dir = ::opendir(d.c_str());
        if (!dir) continue;
        while (const dirent* e = ::readdir(dir)) {
            if (e->d_type != DT_DIR || e->d_name[0] == '.') continue;
            todo.push_back(d + "/" + e->d_name);
        }
        ::closedir(dir);
    }
    return pids;
}

std::string cgroup_directory(const std::string& path) {
    if (path.empty() || path.front() == '/') return path;
    const auto info = read_text("/proc/self/mountinfo");
    if (!info) return path;
    std::istringstream lines(*info);
    std::string line;
    while (std::getline(lines, line)) {
        // "id parent major:minor root mount-point options ... - fstype source ..."
        const auto dash = line.find(" - cgroup2 ");
        if (dash == std::string::npos) continue;
        std::istringstream fields(line.substr(0, dash));
        std::string id, parent, device, root, mount;
        fields >> id >> parent >> device >> root >> mount;
        // Octal escapes (\040 for a space) as the kernel writes them.
        std::string unescaped;
        for (std::size_t i = 0; i < mount.size(); ++i) {
            if (mount[i] == '\\' && i + 3 < mount.size()) {
                unescaped += static_cast<char>(std::strtol(mount.substr(i + 1, 3).c_str(), nullptr, 8));
                i += 3;
            } else {
                unescaped += mount[i];
            }
        }
        return unescaped + "/" + path;
    }
    return path;
}

bool name_matches(const ProcessInfo& process, const std::string& name) {
    if (process.comm == name) return true;
    constexpr std::size_t kCommMax = 15;
    if (name.size() <= kCommMax || process.comm != name.substr(0, kCommMax)) return false;
    char target[PATH_MAX];
    const std::string link = "/proc/" + std::to_string(process.pid) + "/exe";
    const auto n = ::readlink(link.c_str(), target, sizeof target - 1);
    if (n <= 0) return false;
    std::string_view exe(target, static_cast<std::size_t>(n));
    constexpr std::string_view kDeleted = " (deleted)";
    if (exe.size() > kDeleted.size() && exe.substr(exe.size() - kDeleted.size()) == kDeleted)
        exe.remove_suffix(kDeleted.size());
    return file_name(exe) == name;
}

std::optional<std::string> read_maps(int pid) { return read_text("/proc/" + std::to_string(pid) + "/maps"); }

}  // namespace sidetap::capture::tls
