/* The ABI shared by the TLS probes (bpf/tls.bpf.c) and user space
 * (src/capture/tls_*): ring-buffer record layout, map keys and values,
 * counter indexes. C, fixed-width types, explicit padding; the C++ side
 * static_asserts every size and offset (src/capture/tls_record.h).
 *
 * Data flow: uprobes and uretprobes on the TLS library of the processes in
 * "pids" (OpenSSL: SSL_read, SSL_read_ex, SSL_write, SSL_write_ex; GnuTLS:
 * gnutls_record_recv, gnutls_record_send) see the plaintext of every
 * successful call. The entry probe keeps the call's arguments per thread;
 * the return probe attributes the call to a TCP connection and copies the
 * bytes into the ring buffer, split into records of at most
 * SIDETAP_TLS_CHUNK bytes. SSL_free / gnutls_deinit end a TLS object
 * (a CLOSE record); its memory may be reused for the next connection.
 *
 * Attribution (which TCP connection a TLS object speaks on), best first:
 *   IN_CALL    socket I/O made by this thread inside the TLS call (the
 *              library reading or writing its socket): exact;
 *   FD         the descriptor given to SSL_set_fd / gnutls_transport_set_int2,
 *              looked up in the task's file table: exact;
 *   HANDSHAKE  found during the object's handshake: socket I/O inside
 *              SSL_do_handshake / gnutls_handshake (exact), or else the TCP
 *              socket the thread last received on when the handshake began
 *              (servers that feed the library through memory BIOs or
 *              callbacks call the handshake right after reading the socket,
 *              while their first read of plaintext may come later, from a
 *              job queue, after other sockets were read); kept on the object
 *              and used by its later calls (they carry OBJECT);
 *   LAST_RECV  (reads of objects without a handshake finding) the TCP socket
 *              this thread last received on;
 *   OBJECT     what an earlier call on the same TLS object found;
 *   NONE       nothing known: the bytes cannot be given addresses.
 * The socket I/O is seen by tp_btf programs on sock_recv_length and
 * sock_send_length (Linux 6.3+).
 */
#ifndef SIDETAP_TLS_ABI_H
#define SIDETAP_TLS_ABI_H

#include <linux/types.h>

/* Largest number of data bytes in one record, and records per call: a call
 * with more than SIDETAP_TLS_CHUNK * SIDETAP_TLS_MAX_CHUNKS bytes is cut
 * there (SIDETAP_TLS_CTR_TRUNCATED; the stream offsets tell user space how
 * much is missing). */
#define SIDETAP_TLS_CHUNK 16384
#define SIDETAP_TLS_MAX_CHUNKS 8

/* Record kinds. */
#define SIDETAP_TLS_DATA 0  /* plaintext of one call (or a piece of it) */
#define SIDETAP_TLS_CLOSE 1 /* the TLS object was freed: forget it */

/* Directions, seen from the probed process. */
#define SIDETAP_TLS_READ 0  /* the process received these bytes from its peer */
#define SIDETAP_TLS_WRITE 1 /* the process sent them */

/* How the record's tuple was found (see above). */
#define SIDETAP_TLS_ATTR_NONE 0
#define SIDETAP_TLS_ATTR_IN_CALL 1
#define SIDETAP_TLS_ATTR_FD 2
#define SIDETAP_TLS_ATTR_LAST_RECV 3
#define SIDETAP_TLS_ATTR_OBJECT 4
#define SIDETAP_TLS_ATTR_HANDSHAKE 5 /* kept on the object only; records carry OBJECT */

/* Record flags. */
#define SIDETAP_TLS_FLAG_HANDSHAKE 1 /* the object's handshake was seen: its streams are seen from their first byte */

/* TLS libraries. */
#define SIDETAP_TLS_LIB_OPENSSL 1
#define SIDETAP_TLS_LIB_GNUTLS 2

/* The TCP connection of a TLS object, from the process's side. */
struct sidetap_tls_tuple {
    __u8 local[16];    /* IPv4: the first 4 bytes; IPv4-mapped IPv6 as the socket has it */
    __u8 remote[16];
    __u16 local_port;  /* host byte order */
    __u16 remote_port; /* host byte order */
    __u8 family;       /* 4, 6; 0: no tuple */
    __u8 pad[3];       /* zero */
};

/* One ring-buffer record: this header, then len bytes of plaintext. Every
 * field is written before the record is submitted. */
struct sidetap_tls_record {
    __u64 ktime_ns;      /* bpf_ktime_get_ns (CLOCK_MONOTONIC): a read's return, a write's entry */
    __u64 object;        /* the SSL* / gnutls_session_t */
    __u64 offset;        /* bytes of this direction of the object before this record's */
    __u64 generation;    /* when the object was first seen (ktime): tells successive objects at one address apart */
    __u32 tgid;          /* the process (in the initial PID namespace) */
    __u32 len;           /* data bytes that follow (<= SIDETAP_TLS_CHUNK) */
    __u32 call_len;      /* bytes of the whole call */
    __u8 kind;           /* SIDETAP_TLS_DATA / SIDETAP_TLS_CLOSE */
    __u8 direction;      /* SIDETAP_TLS_READ / SIDETAP_TLS_WRITE */
    __u8 attribution;    /* SIDETAP_TLS_ATTR_* of tuple */
    __u8 library;        /* SIDETAP_TLS_LIB_* */
    __u8 flags;          /* SIDETAP_TLS_FLAG_* */
    __u8 pad[7];         /* zero */
    struct sidetap_tls_tuple tuple;
    /* __u8 data[len] follows */
};

/* Map "pids": BPF_MAP_TYPE_HASH, key __u32 tgid, value __u8 (1): the
 * processes whose calls are recorded (user space keeps it in step with the
 * processes it attached to). */
#define SIDETAP_TLS_PIDS_ENTRIES 4096

/* Map "execs": BPF_MAP_TYPE_LRU_HASH, key __u32 tgid, value __u64 ktime of
 * the exec: the processes that executed a new program
 * (tp_btf/sched_process_exec, every process of the system); user space reads
 * and deletes them about once a second and looks again at those it looked at
 * before the exec. */
#define SIDETAP_TLS_EXECS_ENTRIES 4096

/* Map "objects": BPF_MAP_TYPE_LRU_HASH, what is known of each live TLS
 * object. Least recently used entries make room for new ones (user space
 * then sees a new generation for an object it knew: a counted break). */
#define SIDETAP_TLS_OBJECTS_ENTRIES 65536
struct sidetap_tls_object_key {
    __u32 tgid;
    __u32 pad; /* zero */
    __u64 object;
};

/* Per-CPU counters: map "counters", BPF_MAP_TYPE_ARRAY with BPF_F_MMAPABLE,
 * value __u64, key cpu * SIDETAP_TLS_CTR_STRIDE + counter (one cache line
 * per CPU, as in sidetap_abi.h). */
#define SIDETAP_TLS_CTR_STRIDE 16
enum sidetap_tls_counter {
    SIDETAP_TLS_CTR_CALLS = 0,          /* successful data calls recorded */
    SIDETAP_TLS_CTR_BYTES = 1,          /* plaintext bytes of those calls */
    SIDETAP_TLS_CTR_RING_FULL = 2,      /* records lost: the ring buffer had no room */
    SIDETAP_TLS_CTR_COPY_FAILED = 3,    /* records lost: the plaintext could not be read */
    SIDETAP_TLS_CTR_TRUNCATED = 4,      /* calls cut at SIDETAP_TLS_MAX_CHUNKS records */
    SIDETAP_TLS_CTR_UNATTRIBUTED = 5,   /* calls with no connection found (ATTR_NONE) */
    SIDETAP_TLS_CTR_UNCORK_SKIPPED = 6, /* GnuTLS sends made inside gnutls_record_uncork (already seen) */
    SIDETAP_TLS_CTR_CLOSES = 7,         /* TLS objects freed */
    SIDETAP_TLS_CTR_ATTR_IN_CALL = 8,   /* calls attributed by socket I/O inside the call */
    SIDETAP_TLS_CTR_ATTR_FD = 9,        /* ... by the descriptor of SSL_set_fd */
    SIDETAP_TLS_CTR_ATTR_LAST_RECV = 10, /* ... by the thread's last TCP receive */
    SIDETAP_TLS_CTR_ATTR_OBJECT = 11,   /* ... by an earlier call on the object */
    SIDETAP_TLS_CTR_CALLS_LOST = 12,    /* calls whose entry was not seen (probe attached mid-call) */
    SIDETAP_TLS_CTR_HANDSHAKES = 13,    /* handshake calls that attributed their object */
    SIDETAP_TLS_CTR_COUNT = 14,
};

#endif /* SIDETAP_TLS_ABI_H */
