/* The one ABI shared by the BPF programs (bpf/sidetap.bpf.c) and user space
 * (src/capture/ebpf_*): ring-buffer record layout, map keys and values,
 * counter indexes. C, fixed-width types, explicit padding; the C++ side
 * static_asserts every size and offset (src/capture/ebpf_record.h).
 *
 * Data flow: a hook (socket filter, tc, cgroup_skb) sees a packet, counts it
 * (SIDETAP_CTR_SEEN), decides in the kernel whether it is wanted (server
 * ports, optional server addresses, fragments of a wanted datagram) and, if
 * so, reserves one record in the ring buffer and copies the packet from its
 * network header into it.
 */
#ifndef SIDETAP_BPF_ABI_H
#define SIDETAP_BPF_ABI_H

#include <linux/types.h>

/* Largest number of packet bytes copied into one record (from the network
 * header on). Larger packets (GSO/GRO aggregates beyond 64 KiB) are cut
 * there and counted (SIDETAP_CTR_TRUNCATED); the record keeps the real
 * length in orig_len. */
#define SIDETAP_MAX_CAPTURE 65536

/* Record directions. */
#define SIDETAP_DIR_INGRESS 0 /* received by the host / the cgroup */
#define SIDETAP_DIR_EGRESS 1  /* sent */

/* One ring-buffer record: this header, then caplen bytes of the packet
 * starting at its IPv4 or IPv6 header. The ring-buffer entry may be longer
 * than sizeof(header) + caplen (the program reserves one of a few fixed
 * sizes, as the verifier needs a constant): caplen is authoritative. Every
 * field is written before the record is submitted. */
struct sidetap_record {
    __u64 ktime_ns;  /* bpf_ktime_get_ns() at the hook: CLOCK_MONOTONIC */
    __u32 ifindex;   /* skb->ifindex: the device (0 when unknown) */
    __u32 orig_len;  /* bytes from the network header to the end of the skb */
    __u32 caplen;    /* bytes that follow this header (<= SIDETAP_MAX_CAPTURE) */
    __u8 direction;  /* SIDETAP_DIR_* */
    __u8 pad[3];     /* zero */
    /* __u8 data[caplen] follows */
};

/* Map "rings": BPF_MAP_TYPE_ARRAY_OF_MAPS, key __u32 shard * CPUs + CPU,
 * value a BPF_MAP_TYPE_RINGBUF of struct sidetap_record entries; one ring
 * per shard and possible CPU, all of one size, created and inserted by user
 * space after loading. A record goes into the ring of its shard (see
 * below) and of the CPU that saw the packet. */

/* Per-CPU counters: map "counters", BPF_MAP_TYPE_ARRAY with BPF_F_MMAPABLE,
 * value __u64, key cpu * SIDETAP_CTR_STRIDE + counter; max_entries is set
 * by user space to SIDETAP_CTR_STRIDE * (number of possible CPUs) before
 * loading. Each CPU's counters fill one 64-byte cache line of their own (no
 * sharing between CPUs; the atomic add only guards against a softirq
 * interrupting a hook on the same CPU). User space maps the array read-only
 * and sums over CPUs: reading needs no bpf() call, so it goes on after
 * --user has dropped every capability. */
#define SIDETAP_CTR_STRIDE 8
enum sidetap_counter {
    SIDETAP_CTR_SEEN = 0,           /* packets the hook ran for */
    SIDETAP_CTR_PASSED = 1,         /* wanted: a record was attempted */
    SIDETAP_CTR_FRAG_FOLLOWED = 2,  /* non-first fragments passed because their first fragment was wanted */
    SIDETAP_CTR_FRAG_UNKNOWN = 3,   /* non-first fragments of no wanted datagram (not delivered) */
    SIDETAP_CTR_RING_FULL = 4,      /* wanted but the ring buffer had no room: lost */
    SIDETAP_CTR_TRUNCATED = 5,      /* delivered cut at SIDETAP_MAX_CAPTURE */
    SIDETAP_CTR_COPY_FAILED = 6,    /* wanted but the packet bytes could not be read: lost */
    SIDETAP_CTR_TUNNEL = 7,         /* passed as tunnel packets (GRE, IP-in-IP, VXLAN, Geneve, GTP-U) */
    SIDETAP_CTR_COUNT = 8,
};

/* Map "ports": BPF_MAP_TYPE_ARRAY, 65536 entries, key __u32 port (host
 * order), value __u8: non-zero = a server (or upstream) port. A TCP or UDP
 * packet is wanted when its source or destination port is set. */
#define SIDETAP_PORTS_ENTRIES 65536

/* Map "addrs": BPF_MAP_TYPE_HASH, key struct sidetap_addr, value __u8 (1).
 * Consulted only when the program's configuration says addresses are
 * filtered (the rodata variable cfg_filter_addrs): then the source or the
 * destination address must also be in the map. IPv4 addresses are stored
 * IPv4-mapped (::ffff:a.b.c.d). */
#define SIDETAP_ADDRS_ENTRIES 256
struct sidetap_addr {
    __u8 bytes[16];
};

/* Map "frags": BPF_MAP_TYPE_LRU_HASH, key struct sidetap_frag_key, value
 * __u64 (ktime of the wanted first fragment). Written when a wanted first
 * fragment (offset 0, more-fragments set) passes; a later fragment passes
 * when its key is present and younger than SIDETAP_FRAG_TTL_NS. */
#define SIDETAP_FRAGS_ENTRIES 8192
#define SIDETAP_FRAG_TTL_NS (30ull * 1000 * 1000 * 1000)
struct sidetap_frag_key {
    __u8 src[16];  /* IPv4-mapped for IPv4 */
    __u8 dst[16];
    __u32 id;      /* IPv4: 16-bit identification; IPv6: Fragment header id */
    __u8 proto;    /* the upper-layer protocol (UDP, TCP) */
    __u8 pad[3];   /* zero */
};

/* Shards (capture --threads N): every packet goes to one of N shards, each
 * with its own rings ("rings" holds N x CPUs rings: index shard * CPUs +
 * CPU) and its own pipeline in user space. The shard depends only on the
 * unordered pair of IP addresses, so a query and its response, both
 * directions of a TCP connection and every fragment of a datagram (later
 * fragments have no ports) land in the same shard:
 *   folded = src word ^ dst word (IPv4: the two addresses as big-endian
 *            32-bit numbers; IPv6: the XOR of all eight big-endian words)
 *   shard  = sidetap_shard_of(folded, seed, N)
 * XOR makes it symmetric. The same function is used by the eBPF programs,
 * by the cBPF program of libpcap's PACKET_FANOUT_CBPF group
 * (src/capture/shard.cpp builds it instruction by instruction, with the
 * same constants) and by user space (tests). The seed is random per run. */
#define SIDETAP_SHARD_MULTIPLIER 0x9E3779B1u /* 2^32 / golden ratio */
#define SIDETAP_MAX_SHARDS 64

static inline __u32 sidetap_shard_mix(__u32 folded, __u32 seed)
{
    __u32 h = (folded ^ seed) * SIDETAP_SHARD_MULTIPLIER;
    return h ^ (h >> 16);
}

static inline __u32 sidetap_shard_of(__u32 folded, __u32 seed, __u32 shards)
{
    return shards <= 1 ? 0 : sidetap_shard_mix(folded, seed) % shards;
}

#endif /* SIDETAP_BPF_ABI_H */
