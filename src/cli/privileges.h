// Privileges of `sidetap capture`: what each capture mode needs, and the
// drop to an unprivileged user (--user) once everything privileged is open.
//
// Sequence in capture (all before the first packet is read):
//   1. lookup_user(name)            usage error (exit 2) for an unknown user;
//   2. lock_down(name)              before any thread is started: the
//                                   bounding set, the ambient set and
//                                   no_new_privs are per thread, and threads
//                                   created later inherit them;
//   3. open capture handles / attach eBPF programs, outputs, metrics socket;
//   4. switch_user(name, account)   setgroups, setgid, setuid (every thread,
//                                   through glibc); afterwards no capability
//                                   is left and none can be regained.
//
// lock_down() empties the capability bounding set (PR_CAPBSET_DROP for every
// capability still in it; needs CAP_SETPCAP, which a root process has),
// clears the ambient set and sets no_new_privs: after step 4 neither an
// execve of a setuid or file-capability binary nor anything else can bring
// a capability back. It does not touch the permitted and effective sets, so
// step 3 still works. Errors are util::FatalError (exit 1) naming the step.
#pragma once

#include <sys/types.h>

#include <string>

namespace sidetap::cli {

struct Account {
    uid_t uid;
    gid_t gid;
};

Account lookup_user(const std::string& name);

void lock_down(const std::string& name);

void switch_user(const std::string& name, const Account& account);

}  // namespace sidetap::cli
