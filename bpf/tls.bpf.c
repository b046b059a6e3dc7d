/* sidetap's TLS probes: the plaintext of a DNS server's DNS over TLS and DNS
 * over HTTPS connections, read at the server's TLS library (see tls_abi.h
 * for the records and the attribution rules).
 *
 *   OpenSSL   SSL_read, SSL_read_ex, SSL_write, SSL_write_ex (entry + return)
 *             SSL_set_fd (the descriptor), SSL_do_handshake (the object is
 *             new: its streams start here), SSL_free (object ends)
 *   GnuTLS    gnutls_record_recv, gnutls_record_send (entry + return),
 *             gnutls_record_uncork (sends inside it repeat data already
 *             seen: skipped), gnutls_transport_set_int2, gnutls_handshake,
 *             gnutls_deinit
 *   kernel    tp_btf/sock_recv_length, tp_btf/sock_send_length: which TCP
 *             socket a thread reads or writes; tp_btf/sched_process_exec:
 *             processes that became another program (user space looks at
 *             them again: a name it did not follow may now be one it does,
 *             and a followed process lost its probes with its old image)
 *
 * No vmlinux.h: the few kernel structures read here are declared below with
 * only the fields used, marked preserve_access_index, so libbpf relocates
 * every field access against the running kernel's BTF (CO-RE). The object
 * builds without the build host's BTF; loading needs the running kernel's
 * (/sys/kernel/btf/vmlinux).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <asm/ptrace.h>

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "tls_abi.h"

/* bpf_probe_read_user, bpf_get_current_task: GPL-only helpers. */
char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

/* ---------------------------------------------------------------- kernel types (CO-RE) */

struct in6_addr {
    union {
        __u8 u6_addr8[16];
    } in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
    __be32 skc_daddr;
    __be32 skc_rcv_saddr;
    __be16 skc_dport;
    __u16 skc_num;
    unsigned short skc_family;
    struct in6_addr skc_v6_daddr;
    struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
    struct sock_common __sk_common;
    __u16 sk_protocol;
} __attribute__((preserve_access_index));

struct file;

struct socket {
    struct file *file;
    struct sock *sk;
} __attribute__((preserve_access_index));

struct file {
    void *private_data;
} __attribute__((preserve_access_index));

struct fdtable {
    unsigned int max_fds;
    struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
    struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct task_struct {
    struct files_struct *files;
} __attribute__((preserve_access_index));

/* Set by user space before loading. */
const volatile __u32 cfg_wakeup_bytes = 0; /* wake the reader only when this much is waiting (0: always) */

/* ---------------------------------------------------------------- maps */

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 1 << 22); /* set by user space */
} ring SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, SIDETAP_TLS_CTR_STRIDE); /* x possible CPUs, set by user space */
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SIDETAP_TLS_PIDS_ENTRIES);
    __type(key, __u32);
    __type(value, __u8);
} pids SEC(".maps");

struct object_state {
    struct sidetap_tls_tuple tuple;
    __u64 offset[2];    /* bytes recorded so far, per direction (SIDETAP_TLS_READ/WRITE) */
    __u64 generation;   /* ktime when first seen */
    __s32 fd;           /* from SSL_set_fd / gnutls_transport_set_int2; -1: none */
    __u8 attribution;   /* how tuple was found */
    __u8 flags;         /* SIDETAP_TLS_FLAG_* */
    __u8 pad[2];
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, SIDETAP_TLS_OBJECTS_ENTRIES);
    __type(key, struct sidetap_tls_object_key);
    __type(value, struct object_state);
} objects SEC(".maps");

/* A TLS call in progress, per thread (key: pid_tgid). LRU like the other
 * per-thread maps: a thread that dies inside a call leaves its entry, which
 * must not keep a slot forever (a call evicted in flight counts as lost). */
struct call_state {
    __u64 object;
    __u64 buf;
    __u64 len_ptr;      /* SSL_*_ex: where the library stores the byte count; 0: the return value is it */
    __u64 ktime_ns;     /* entry */
    __u8 direction;
    __u8 library;
    __u8 in_call;       /* socket I/O seen inside the call: tuple below */
    __u8 pad[5];
    struct sidetap_tls_tuple tuple;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct call_state);
} calls SEC(".maps");

/* A handshake call in progress, per thread (key: pid_tgid): the object,
 * and the socket I/O seen inside it. */
struct handshake_state {
    __u64 object;
    __u8 in_call;
    __u8 have_last;
    __u8 pad[6];
    struct sidetap_tls_tuple tuple;  /* in_call: the socket of the I/O */
    struct sidetap_tls_tuple last;   /* have_last: the thread's last receive when it began */
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct handshake_state);
} handshakes SEC(".maps");

/* The TCP connection each thread last received data on. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct sidetap_tls_tuple);
} last_recv SEC(".maps");

/* Threads inside gnutls_record_uncork. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u8);
} uncorking SEC(".maps");

/* Processes that called execve since user space last looked (key: tgid,
 * value: when, ktime). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, SIDETAP_TLS_EXECS_ENTRIES);
    __type(key, __u32);
    __type(value, __u64);
} execs SEC(".maps");

/* ---------------------------------------------------------------- helpers */

static __always_inline void count(__u32 counter, __u64 n) {
    __u32 key = bpf_get_smp_processor_id() * SIDETAP_TLS_CTR_STRIDE + counter;
    __u64 *value = bpf_map_lookup_elem(&counters, &key);
    if (value) __sync_fetch_and_add(value, n);
}

static __always_inline int traced(__u64 pid_tgid) {
    __u32 tgid = pid_tgid >> 32;
    return bpf_map_lookup_elem(&pids, &tgid) != 0;
}

/* The addresses and ports of a TCP socket; 0 when it is not one. */
static __always_inline int read_tuple(struct sock *sk, struct sidetap_tls_tuple *out) {
    if (!sk) return 0;
    if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP) return 0;
    unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);
    __builtin_memset(out, 0, sizeof(*out));
    if (family == AF_INET) {
        __be32 local = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
        __be32 remote = BPF_CORE_READ(sk, __sk_common.skc_daddr);
        __builtin_memcpy(out->local, &local, 4);
        __builtin_memcpy(out->remote, &remote, 4);
        out->family = 4;
    } else if (family == AF_INET6) {
        BPF_CORE_READ_INTO(&out->local, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
        BPF_CORE_READ_INTO(&out->remote, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
        out->family = 6;
    } else {
        return 0;
    }
    out->local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
    __be16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
    out->remote_port = __builtin_bswap16(dport);
    return 1;
}

/* The TCP socket behind descriptor fd of the current task. */
static __always_inline int tuple_of_fd(__s32 fd, struct sidetap_tls_tuple *out) {
    if (fd < 0) return 0;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
    if (!fdt) return 0;
    if ((__u32)fd >= BPF_CORE_READ(fdt, max_fds)) return 0;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *file = 0;
    if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) != 0 || !file) return 0;
    struct socket *sock = BPF_CORE_READ(file, private_data);
    if (!sock) return 0;
    /* A socket's file and its struct socket point at each other; anything
     * else behind the descriptor is not a socket. */
    if (BPF_CORE_READ(sock, file) != file) return 0;
    return read_tuple(BPF_CORE_READ(sock, sk), out);
}

static __always_inline struct object_state *object_of(__u32 tgid, __u64 object) {
    struct sidetap_tls_object_key key = {.tgid = tgid, .pad = 0, .object = object};
    struct object_state *state = bpf_map_lookup_elem(&objects, &key);
    if (state) return state;
    struct object_state fresh;
    __builtin_memset(&fresh, 0, sizeof(fresh));
    fresh.fd = -1;
    /* Two objects at one address cannot be created in the same nanosecond. */
    fresh.generation = bpf_ktime_get_ns();
    bpf_map_update_elem(&objects, &key, &fresh, BPF_NOEXIST);
    return bpf_map_lookup_elem(&objects, &key);
}

/* ---------------------------------------------------------------- calls */

static __always_inline int enter(void *object, const void *buf, void *len_ptr, __u8 direction, __u8 library) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id)) return 0;
    struct call_state call;
    __builtin_memset(&call, 0, sizeof(call));
    call.object = (__u64)object;
    call.buf = (__u64)buf;
    call.len_ptr = (__u64)len_ptr;
    call.ktime_ns = bpf_ktime_get_ns();
    call.direction = direction;
    call.library = library;
    bpf_map_update_elem(&calls, &id, &call, BPF_ANY);
    return 0;
}

/* A wakeup per record costs the server's thread an irq_work and wakes the
 * reader, which then competes with the server for a CPU, for every call.
 * The record that makes the waiting data cross cfg_wakeup_bytes wakes it
 * (once per batch); otherwise the reader finds records when its poll times
 * out (every 10 ms). The ring is shared by all CPUs: another producer may
 * move the count meanwhile, so a crossing may wake twice or not at all;
 * the reader's timeout covers both. */
static __always_inline __u64 wakeup_flags(__u64 entry) {
    if (!cfg_wakeup_bytes) return 0;
    __u64 waiting = bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA);
    return waiting >= cfg_wakeup_bytes && waiting - entry < cfg_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                             : BPF_RB_NO_WAKEUP;
}

/* One record of `len` (<= SIZE - header) bytes from `src`. The ring needs a
 * constant reservation size: the caller picks the smallest class that fits. */
#define EMIT_CLASS(SIZE)                                                                           \
    static __always_inline int emit_##SIZE(const struct sidetap_tls_record *head, const void *src,  \
                                            __u32 len) {                                           \
        struct sidetap_tls_record *rec = bpf_ringbuf_reserve(&ring, SIZE, 0);                      \
        if (!rec) {                                                                                \
            count(SIDETAP_TLS_CTR_RING_FULL, 1);                                                   \
            return -1;                                                                             \
        }                                                                                          \
        __builtin_memcpy(rec, head, sizeof(*head));                                                \
        rec->len = len;                                                                            \
        /* The caller chose the class by len; the barrier makes the compiler                    \
         * keep this bound on the very register the verifier checks. */                          \
        __u64 n = len;                                                                             \
        barrier_var(n);                                                                            \
        if (n > SIZE - sizeof(*head)) n = SIZE - sizeof(*head);                                    \
        if (bpf_probe_read_user((__u8 *)(rec + 1), n, src) != 0) {                                 \
            bpf_ringbuf_discard(rec, 0);                                                           \
            count(SIDETAP_TLS_CTR_COPY_FAILED, 1);                                                 \
            return -1;                                                                             \
        }                                                                                          \
        bpf_ringbuf_submit(rec, wakeup_flags(SIZE + 8));                                           \
        return 0;                                                                                  \
    }

#define HEAD_BYTES sizeof(struct sidetap_tls_record)
EMIT_CLASS(256)
EMIT_CLASS(1024)
EMIT_CLASS(4096)
/* SIDETAP_TLS_CHUNK + header */
EMIT_CLASS(16512)

_Static_assert(16512 - sizeof(struct sidetap_tls_record) >= SIDETAP_TLS_CHUNK, "largest class holds a chunk");

static __always_inline int emit(const struct sidetap_tls_record *head, const void *src, __u32 len) {
    if (len <= 256 - HEAD_BYTES) return emit_256(head, src, len);
    if (len <= 1024 - HEAD_BYTES) return emit_1024(head, src, len);
    if (len <= 4096 - HEAD_BYTES) return emit_4096(head, src, len);
    return emit_16512(head, src, len);
}

static __always_inline int leave(__u64 bytes) {
    __u64 id = bpf_get_current_pid_tgid();
    struct call_state *call = bpf_map_lookup_elem(&calls, &id);
    if (!call) {
        if (bytes > 0 && traced(id)) count(SIDETAP_TLS_CTR_CALLS_LOST, 1);
        return 0;
    }
    struct call_state c = *call;
    bpf_map_delete_elem(&calls, &id);
    if (c.len_ptr) {
        /* SSL_*_ex: 1 on success, the count in *len_ptr. */
        __u64 n = 0;
        if (bytes != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)c.len_ptr) != 0) return 0;
        bytes = n;
    }
    if (bytes == 0) return 0;

    __u32 tgid = id >> 32;
    struct object_state *obj = object_of(tgid, c.object);
    if (!obj) return 0;

    /* Attribution: socket I/O inside the call, then the descriptor, then
     * (reads) the thread's last TCP receive, then the object's earlier
     * finding. An exact finding is kept on the object; a guess replaces
     * only a guess. */
    struct sidetap_tls_tuple tuple;
    __u8 attr = SIDETAP_TLS_ATTR_NONE;
    if (c.in_call) {
        tuple = c.tuple;
        attr = SIDETAP_TLS_ATTR_IN_CALL;
    } else if (obj->fd >= 0 && tuple_of_fd(obj->fd, &tuple)) {
        attr = SIDETAP_TLS_ATTR_FD;
    } else {
        /* What the handshake found beats a read-time guess: see tls_abi.h. */
        int strong = obj->attribution == SIDETAP_TLS_ATTR_IN_CALL || obj->attribution == SIDETAP_TLS_ATTR_FD ||
                     obj->attribution == SIDETAP_TLS_ATTR_HANDSHAKE;
        struct sidetap_tls_tuple *last = 0;
        if (c.direction == SIDETAP_TLS_READ && !strong) last = bpf_map_lookup_elem(&last_recv, &id);
        if (last) {
            tuple = *last;
            attr = SIDETAP_TLS_ATTR_LAST_RECV;
        } else if (obj->tuple.family) {
            tuple = obj->tuple;
            attr = SIDETAP_TLS_ATTR_OBJECT;
        } else if ((last = bpf_map_lookup_elem(&last_recv, &id)) != 0) {
            tuple = *last;
            attr = SIDETAP_TLS_ATTR_LAST_RECV;
        }
    }
    if (attr == SIDETAP_TLS_ATTR_NONE) {
        __builtin_memset(&tuple, 0, sizeof(tuple));
        count(SIDETAP_TLS_CTR_UNATTRIBUTED, 1);
    } else {
        count(SIDETAP_TLS_CTR_ATTR_IN_CALL + (attr - SIDETAP_TLS_ATTR_IN_CALL), 1);
        if (attr != SIDETAP_TLS_ATTR_OBJECT) {
            obj->tuple = tuple;
            obj->attribution = attr;
        }
    }

    __u8 dir = c.direction ? 1 : 0;
    __u64 offset = obj->offset[dir];
    obj->offset[dir] = offset + bytes;
    count(SIDETAP_TLS_CTR_CALLS, 1);
    count(SIDETAP_TLS_CTR_BYTES, bytes);

    struct sidetap_tls_record head;
    __builtin_memset(&head, 0, sizeof(head));
    head.ktime_ns = dir == SIDETAP_TLS_WRITE ? c.ktime_ns : bpf_ktime_get_ns();
    head.object = c.object;
    head.tgid = tgid;
    head.generation = obj->generation;
    head.call_len = bytes > 0xffffffffULL ? 0xffffffffU : (__u32)bytes;
    head.kind = SIDETAP_TLS_DATA;
    head.direction = dir;
    head.attribution = attr;
    head.library = c.library;
    head.flags = obj->flags;
    head.tuple = tuple;

    for (__u32 i = 0; i < SIDETAP_TLS_MAX_CHUNKS; i++) {
        __u64 at = (__u64)i * SIDETAP_TLS_CHUNK;
        if (at >= bytes) return 0;
        __u64 rest = bytes - at;
        __u32 len = rest > SIDETAP_TLS_CHUNK ? SIDETAP_TLS_CHUNK : (__u32)rest;
        head.offset = offset + at;
        /* A lost record is a gap user space sees in the offsets. */
        emit(&head, (const void *)(c.buf + at), len);
    }
    if (bytes > (__u64)SIDETAP_TLS_MAX_CHUNKS * SIDETAP_TLS_CHUNK) count(SIDETAP_TLS_CTR_TRUNCATED, 1);
    return 0;
}

static __always_inline int object_ends(void *object) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id)) return 0;
    struct sidetap_tls_object_key key = {.tgid = id >> 32, .pad = 0, .object = (__u64)object};
    struct object_state *obj = bpf_map_lookup_elem(&objects, &key);
    if (!obj) return 0;
    struct sidetap_tls_record *rec = bpf_ringbuf_reserve(&ring, sizeof(*rec), 0);
    if (rec) {
        __builtin_memset(rec, 0, sizeof(*rec));
        rec->ktime_ns = bpf_ktime_get_ns();
        rec->object = (__u64)object;
        rec->tgid = id >> 32;
        rec->generation = obj->generation;
        rec->kind = SIDETAP_TLS_CLOSE;
        rec->attribution =
            obj->attribution == SIDETAP_TLS_ATTR_HANDSHAKE ? SIDETAP_TLS_ATTR_OBJECT : obj->attribution;
        rec->tuple = obj->tuple;
        bpf_ringbuf_submit(rec, wakeup_flags(sizeof(*rec) + 8));
    } else {
        count(SIDETAP_TLS_CTR_RING_FULL, 1);
    }
    count(SIDETAP_TLS_CTR_CLOSES, 1);
    bpf_map_delete_elem(&objects, &key);
    return 0;
}

/* Handshake entry: a handshake before any data means the object is new (not
 * one that was busy before the probes were attached), so its streams start
 * at a message boundary. The thread's last receive is noted, and the
 * return probe attributes the object (tls_abi.h, HANDSHAKE). */
static __always_inline int handshake_enter(void *object) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id)) return 0;
    struct object_state *obj = object_of(id >> 32, (__u64)object);
    if (obj && obj->offset[0] == 0 && obj->offset[1] == 0) obj->flags |= SIDETAP_TLS_FLAG_HANDSHAKE;
    struct handshake_state h;
    __builtin_memset(&h, 0, sizeof(h));
    h.object = (__u64)object;
    struct sidetap_tls_tuple *last = bpf_map_lookup_elem(&last_recv, &id);
    if (last) {
        h.last = *last;
        h.have_last = 1;
    }
    bpf_map_update_elem(&handshakes, &id, &h, BPF_ANY);
    return 0;
}

static __always_inline int handshake_leave(void) {
    __u64 id = bpf_get_current_pid_tgid();
    struct handshake_state *h = bpf_map_lookup_elem(&handshakes, &id);
    if (!h) return 0;
    struct handshake_state hs = *h;
    bpf_map_delete_elem(&handshakes, &id);
    struct sidetap_tls_object_key key = {.tgid = id >> 32, .pad = 0, .object = hs.object};
    struct object_state *obj = bpf_map_lookup_elem(&objects, &key);
    if (!obj || obj->attribution == SIDETAP_TLS_ATTR_FD || obj->attribution == SIDETAP_TLS_ATTR_IN_CALL) return 0;
    if (hs.in_call) {
        obj->tuple = hs.tuple;
        obj->attribution = SIDETAP_TLS_ATTR_IN_CALL;
    } else if (hs.have_last) {
        obj->tuple = hs.last;
        obj->attribution = SIDETAP_TLS_ATTR_HANDSHAKE;
    } else {
        return 0;
    }
    count(SIDETAP_TLS_CTR_HANDSHAKES, 1);
    return 0;
}

static __always_inline int set_fd(void *object, int fd) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id)) return 0;
    struct object_state *obj = object_of(id >> 32, (__u64)object);
    if (obj) obj->fd = fd;
    return 0;
}

/* ---------------------------------------------------------------- OpenSSL */

SEC("uprobe")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf, int num) {
    return enter(ssl, buf, 0, SIDETAP_TLS_READ, SIDETAP_TLS_LIB_OPENSSL);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_leave, int ret) { return leave(ret > 0 ? (__u64)ret : 0); }

SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, __u64 num, __u64 *readbytes) {
    return enter(ssl, buf, readbytes, SIDETAP_TLS_READ, SIDETAP_TLS_LIB_OPENSSL);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_read_ex_leave, int ret) { return leave(ret == 1 ? 1 : 0); }

SEC("uprobe")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, int num) {
    return enter(ssl, buf, 0, SIDETAP_TLS_WRITE, SIDETAP_TLS_LIB_OPENSSL);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_leave, int ret) { return leave(ret > 0 ? (__u64)ret : 0); }

SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, __u64 num, __u64 *written) {
    return enter(ssl, buf, written, SIDETAP_TLS_WRITE, SIDETAP_TLS_LIB_OPENSSL);
}

SEC("uretprobe")
int BPF_KRETPROBE(ssl_write_ex_leave, int ret) { return leave(ret == 1 ? 1 : 0); }

SEC("uprobe")
int BPF_KPROBE(ssl_set_fd, void *ssl, int fd) { return set_fd(ssl, fd); }

SEC("uprobe")
int BPF_KPROBE(ssl_do_handshake_enter, void *ssl) { return handshake_enter(ssl); }

SEC("uretprobe")
int BPF_KRETPROBE(ssl_do_handshake_leave, int ret) { return handshake_leave(); }

SEC("uprobe")
int BPF_KPROBE(ssl_free, void *ssl) { return object_ends(ssl); }

/* ---------------------------------------------------------------- GnuTLS */

SEC("uprobe")
int BPF_KPROBE(gnutls_recv_enter, void *session, void *data, __u64 size) {
    return enter(session, data, 0, SIDETAP_TLS_READ, SIDETAP_TLS_LIB_GNUTLS);
}

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_recv_leave, long ret) { return leave(ret > 0 ? (__u64)ret : 0); }

SEC("uprobe")
int BPF_KPROBE(gnutls_send_enter, void *session, const void *data, __u64 size) {
    __u64 id = bpf_get_current_pid_tgid();
    /* gnutls_record_uncork sends what earlier (corked) sends buffered: those
     * bytes were recorded when they were handed over. */
    if (bpf_map_lookup_elem(&uncorking, &id)) {
        if (traced(id)) count(SIDETAP_TLS_CTR_UNCORK_SKIPPED, 1);
        return 0;
    }
    return enter(session, data, 0, SIDETAP_TLS_WRITE, SIDETAP_TLS_LIB_GNUTLS);
}

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_send_leave, long ret) {
    __u64 id = bpf_get_current_pid_tgid();
    if (bpf_map_lookup_elem(&uncorking, &id)) return 0;
    return leave(ret > 0 ? (__u64)ret : 0);
}

SEC("uprobe")
int BPF_KPROBE(gnutls_uncork_enter, void *session, unsigned int flags) {
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id)) return 0;
    __u8 one = 1;
    bpf_map_update_elem(&uncorking, &id, &one, BPF_ANY);
    return 0;
}

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_uncork_leave, long ret) {
    __u64 id = bpf_get_current_pid_tgid();
    bpf_map_delete_elem(&uncorking, &id);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(gnutls_set_int2, void *session, int recv_fd, int send_fd) { return set_fd(session, recv_fd); }

SEC("uprobe")
int BPF_KPROBE(gnutls_handshake_enter, void *session) { return handshake_enter(session); }

SEC("uretprobe")
int BPF_KRETPROBE(gnutls_handshake_leave, int ret) { return handshake_leave(); }

SEC("uprobe")
int BPF_KPROBE(gnutls_deinit, void *session) { return object_ends(session); }

/* ---------------------------------------------------------------- socket I/O */

static __always_inline int socket_io(struct sock *sk, int ret, int receive) {
    __u64 id = bpf_get_current_pid_tgid();
    if (ret <= 0 || !traced(id)) return 0;
    struct sidetap_tls_tuple tuple;
    if (!read_tuple(sk, &tuple)) return 0;
    struct call_state *call = bpf_map_lookup_elem(&calls, &id);
    if (call) {
        call->tuple = tuple;
        call->in_call = 1;
    }
    struct handshake_state *h = bpf_map_lookup_elem(&handshakes, &id);
    if (h) {
        h->tuple = tuple;
        h->in_call = 1;
    }
    if (receive) bpf_map_update_elem(&last_recv, &id, &tuple, BPF_ANY);
    return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags) { return socket_io(sk, ret, 1); }

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags) { return socket_io(sk, ret, 0); }

/* Runs in the process that executed the new program. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(process_exec, void *task, int old_pid, void *bprm) {
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    __u64 now = bpf_ktime_get_ns();
    bpf_map_update_elem(&execs, &tgid, &now, BPF_ANY);
    return 0;
}
