#include "cli/privileges.h"

#include "util/error.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sidetap::cli {

namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

Account lookup_user(const std::string& name) {
    errno = 0;
    const passwd* pw = ::getpwnam(name.c_str());
    if (!pw) throw util::FatalError("--user " + name + ": no such user", util::kExitUsage);
    return {pw->pw_uid, pw->pw_gid};
}

void lock_down(const std::string& name) {
    // The kernel may know more capabilities than the headers we were built
    // with: go on until PR_CAPBSET_READ says EINVAL (no such capability).
    for (int cap = 0; cap < 64; ++cap) {
        const int in_set = ::prctl(PR_CAPBSET_READ, cap, 0, 0, 0);
        if (in_set < 0) break;
        if (in_set == 0) continue;
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            throw util::FatalError("--user " + name + ": cannot clear capability " + std::to_string(cap) +
                                   " from the bounding set: " + errno_text() +
                                   (errno == EPERM ? " (needs CAP_SETPCAP: start sidetap as root)" : ""));
    }
    // Ambient capabilities exist since Linux 4.3; EINVAL before that means
    // there is nothing to clear.
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        throw util::FatalError("--user " + name + ": cannot clear the ambient capabilities: " + errno_text());
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        throw util::FatalError("--user " + name + ": cannot set no_new_privs: " + errno_text());
}

void switch_user(const std::string& name, const Account& account) {
    // glibc applies setgroups/setgid/setuid to every thread of the process
    // (the output threads already run).
    if (::setgroups(1, &account.gid) != 0)
        throw util::FatalError("--user " + name + ": setgroups: " + errno_text());
    if (::setgid(account.gid) != 0) throw util::FatalError("--user " + name + ": setgid: " + errno_text());
    if (::setuid(account.uid) != 0) throw util::FatalError("--user " + name + ": setuid: " + errno_text());
    if (account.uid != 0 && ::setuid(0) == 0)
        throw util::FatalError("--user " + name + ": could get root back after setuid; refusing to go on");
}

}  // namespace sidetap::cli
