/* sidetap's packet selector and copier: one body, five entry points.
 *
 *   sidetap_socket       socket filter on an AF_PACKET SOCK_DGRAM socket
 *                        (skb->data at the network header); returns 0, so
 *                        the socket itself never queues anything
 *   sidetap_tc_ingress   tc (tcx or clsact) ingress / egress; skb->data at
 *   sidetap_tc_egress    the link header (cfg_l2_len bytes before the IP
 *                        header); returns TC_ACT_UNSPEC (tcx: next)
 *   sidetap_cg_ingress   cgroup_skb ingress / egress; skb->data at the
 *   sidetap_cg_egress    network header; always allows the packet
 *
 * Written against the UAPI headers only (struct __sk_buff, no vmlinux.h):
 * no CO-RE, nothing depends on the build host's kernel.
 *
 * A packet is wanted when it is IPv4 or IPv6 (with any chain of extension
 * headers up to SIDETAP_MAX_EXT) carrying UDP or TCP with a source or
 * destination port in "ports" and, when cfg_filter_addrs is set, a source or
 * destination address in "addrs"; or when it is a non-first fragment of a
 * datagram whose first fragment was wanted ("frags"); or, when cfg_tunnels
 * is set (capture without --no-tunnels), when it is a tunnel packet whose
 * inner DNS user space finds after decapsulation: GRE (and ERSPAN over it),
 * IP-in-IP, IPv6-in-IP, or UDP to the VXLAN, Geneve or GTP-U port — the
 * same set as the libpcap filter, whatever its outer addresses. Everything
 * else is counted as seen and left alone.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "sidetap_abi.h"

/* The helpers used here need no GPL; the kernel still wants a licence string. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by user space before loading (read-only afterwards: the verifier
 * knows the values and drops dead branches). */
const volatile __u32 cfg_l2_len = 0;           /* tc: link header length (14 on Ethernet, 0 on raw IP) */
const volatile __u32 cfg_filter_addrs = 0;     /* "addrs" is consulted */
const volatile __u32 cfg_tunnels = 0;          /* admit tunnel packets (decapsulated in user space) */
const volatile __u32 cfg_skip_out_ifindex = 0; /* socket: drop outgoing copies on this device (loopback) */
const volatile __u32 cfg_wakeup_bytes = 0;     /* wake the reader only when this much is waiting (0: always) */
const volatile __u32 cfg_shards = 1;           /* capture --threads: rings are per shard and CPU */
const volatile __u32 cfg_cpus = 1;             /* possible CPUs: the stride of a shard's rings */
const volatile __u32 cfg_shard_seed = 0;       /* sidetap_shard_of() seed, random per run */

/* One ring buffer per CPU and shard (user space creates them and puts them
 * in "rings" at index = shard * CPUs + CPU): a single ring shared by all
 * CPUs serialises every packet on its spinlock and bounces its cache lines
 * between CPUs, which costs the DNS server several times what selecting the
 * packet does. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
    __uint(max_entries, 1); /* shards x possible CPUs, set by user space */
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
    /* inner map: a BPF_MAP_TYPE_RINGBUF given by user space (bpf_map__set_inner_map_fd) */
} rings SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, SIDETAP_CTR_STRIDE); /* x possible CPUs, set by user space */
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, SIDETAP_PORTS_ENTRIES);
    __type(key, __u32);
    __type(value, __u8);
} ports SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, SIDETAP_ADDRS_ENTRIES);
    __type(key, struct sidetap_addr);
    __type(value, __u8);
} addrs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, SIDETAP_FRAGS_ENTRIES);
    __type(key, struct sidetap_frag_key);
    __type(value, __u64);
} frags SEC(".maps");

#define SIDETAP_MAX_EXT 6

static __always_inline void count(__u32 index)
{
    __u32 key = bpf_get_smp_processor_id() * SIDETAP_CTR_STRIDE + index;
    __u64 *value = bpf_map_lookup_elem(&counters, &key);
    if (value)
        __sync_fetch_and_add(value, 1);
}

static __always_inline int port_wanted(__u16 port)
{
    __u32 key = port;
    __u8 *value = bpf_map_lookup_elem(&ports, &key);
    return value && *value;
}

static __always_inline int addr_wanted(const __u8 *addr)
{
    return bpf_map_lookup_elem(&addrs, addr) != NULL;
}

static __always_inline void map_v4(__u8 *out, __u32 addr_be)
{
    __builtin_memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    __builtin_memcpy(out + 12, &addr_be, 4);
}

/* A wakeup per record would cost an irq_work and a reader system call per
 * packet, on the CPU that runs the DNS server: the reader polls with a
 * short timeout instead, and is woken early only when a batch is waiting:
 * by the record that makes the waiting data cross cfg_wakeup_bytes (one
 * wakeup per batch, not one per record once the reader is behind). The
 * ring is this CPU's own, so no other producer moves the count meanwhile.
 * `entry` is the bytes this record took (it is already counted). */
static __always_inline __u64 wakeup_flags(void *ring, __u64 entry)
{
    if (!cfg_wakeup_bytes)
        return 0;
    __u64 waiting = bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA);
    return waiting >= cfg_wakeup_bytes && waiting - entry < cfg_wakeup_bytes ? BPF_RB_FORCE_WAKEUP
                                                                             : BPF_RB_NO_WAKEUP;
}

/* Copies the packet from `net` (offset of the network header in skb->data)
 * into a ring-buffer record. The verifier needs a constant reservation
 * size, so the record gets the smallest of a few sizes that holds it.
 * The empty asm hides from clang what it knows about caplen, so that it
 * keeps a bound check on the very register passed to bpf_skb_load_bytes
 * (otherwise it merges the class checks and the verifier sees no bound). */
#define SIDETAP_EMIT_CLASS(SIZE)                                                          \
    if (caplen <= (SIZE)) {                                                               \
        __u64 n = caplen;                                                                 \
        asm volatile("" : "+r"(n));                                                       \
        if (n > (SIZE))                                                                   \
            return;                                                                       \
        asm volatile("" : "+r"(n));                                                       \
        if ((__s64)n < 1)                                                                 \
            return;                                                                       \
        struct sidetap_record *r = bpf_ringbuf_reserve(ring, sizeof(*r) + (SIZE), 0);     \
        if (!r) {                                                                         \
            count(SIDETAP_CTR_RING_FULL);                                                 \
            return;                                                                       \
        }                                                                                 \
        r->ktime_ns = now;                                                                \
        r->ifindex = skb->ifindex;                                                        \
        r->orig_len = orig_len;                                                           \
        r->caplen = n;                                                                    \
        r->direction = direction;                                                         \
        r->pad[0] = r->pad[1] = r->pad[2] = 0;                                            \
        if (bpf_skb_load_bytes(skb, net, (void *)(r + 1), n) < 0) {                       \
            bpf_ringbuf_discard(r, 0);                                                    \
            count(SIDETAP_CTR_COPY_FAILED);                                               \
            return;                                                                       \
        }                                                                                 \
        bpf_ringbuf_submit(r, wakeup_flags(ring, sizeof(*r) + (SIZE) + 8));              \
        return;                                                                           \
    }

static __always_inline void emit(struct __sk_buff *skb, __u32 net, __u8 direction, __u64 now, __u32 folded)
{
    __u32 orig_len = skb->len > net ? skb->len - net : 0;
    __u32 caplen = orig_len;
    if (caplen > SIDETAP_MAX_CAPTURE) {
        caplen = SIDETAP_MAX_CAPTURE;
        count(SIDETAP_CTR_TRUNCATED);
    }
    if (caplen == 0) {
        count(SIDETAP_CTR_COPY_FAILED);
        return;
    }
    __u32 index = bpf_get_smp_processor_id();
    if (cfg_shards > 1)
        index += sidetap_shard_of(folded, cfg_shard_seed, cfg_shards) * cfg_cpus;
    void *ring = bpf_map_lookup_elem(&rings, &index);
    if (!ring) {
        count(SIDETAP_CTR_RING_FULL); /* no ring for this CPU: cannot happen, counted all the same */
        return;
    }
    SIDETAP_EMIT_CLASS(128)
    SIDETAP_EMIT_CLASS(256)
    SIDETAP_EMIT_CLASS(384)
    SIDETAP_EMIT_CLASS(512)
    SIDETAP_EMIT_CLASS(768)
    SIDETAP_EMIT_CLASS(1024)
    SIDETAP_EMIT_CLASS(1280)
    SIDETAP_EMIT_CLASS(1536)
    SIDETAP_EMIT_CLASS(2048)
    SIDETAP_EMIT_CLASS(4096)
    SIDETAP_EMIT_CLASS(8192)
    SIDETAP_EMIT_CLASS(16384)
    SIDETAP_EMIT_CLASS(32768)
    SIDETAP_EMIT_CLASS(SIDETAP_MAX_CAPTURE)
}

/* Whether a non-first fragment belongs to a wanted datagram. */
static __always_inline int fragment_followed(struct sidetap_frag_key *key, __u64 now)
{
    __u64 *first = bpf_map_lookup_elem(&frags, key);
    if (first && now - *first < SIDETAP_FRAG_TTL_NS) {
        count(SIDETAP_CTR_FRAG_FOLLOWED);
        return 1;
    }
    count(SIDETAP_CTR_FRAG_UNKNOWN);
    return 0;
}

static __always_inline int tunnel_wanted(__u8 proto, __u16 dst_port)
{
    if (!cfg_tunnels)
        return 0;
    if (proto == IPPROTO_GRE || proto == IPPROTO_IPIP || proto == IPPROTO_IPV6 ||
        (proto == IPPROTO_UDP && (dst_port == 4789 || dst_port == 6081 || dst_port == 2152))) {
        count(SIDETAP_CTR_TUNNEL);
        return 1;
    }
    return 0;
}

static __always_inline int transport_wanted(struct __sk_buff *skb, __u32 off, __u8 proto,
                                            const __u8 *src, const __u8 *dst)
{
    if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
        return tunnel_wanted(proto, 0);
    __u16 pair[2];
    if (bpf_skb_load_bytes(skb, off, pair, sizeof(pair)) < 0)
        return 0;
    if (proto == IPPROTO_UDP && tunnel_wanted(proto, bpf_ntohs(pair[1])))
        return 1;
    if (!port_wanted(bpf_ntohs(pair[0])) && !port_wanted(bpf_ntohs(pair[1])))
        return 0;
    if (cfg_filter_addrs && !addr_wanted(src) && !addr_wanted(dst))
        return 0;
    return 1;
}

static __always_inline void handle_ipv4(struct __sk_buff *skb, __u32 net, __u8 direction, __u64 now)
{
    struct {
        __u8 ver_ihl, tos;
        __u16 tot_len, id, frag_off;
        __u8 ttl, proto;
        __u16 check;
        __u32 saddr, daddr;
    } ip;
    if (bpf_skb_load_bytes(skb, net, &ip, sizeof(ip)) < 0)
        return;
    __u32 ihl = (ip.ver_ihl & 0x0f) * 4;
    if ((ip.ver_ihl >> 4) != 4 || ihl < 20)
        return;
    struct sidetap_frag_key key = {};
    map_v4(key.src, ip.saddr);
    map_v4(key.dst, ip.daddr);
    key.id = bpf_ntohs(ip.id);
    key.proto = ip.proto;
    __u16 frag = bpf_ntohs(ip.frag_off);
    if (frag & 0x1fff) {
        if (fragment_followed(&key, now))
            goto wanted;
        return;
    }
    if (!transport_wanted(skb, net + ihl, ip.proto, key.src, key.dst))
        return;
    if (frag & 0x2000)
        bpf_map_update_elem(&frags, &key, &now, BPF_ANY);
wanted:
    count(SIDETAP_CTR_PASSED);
    emit(skb, net, direction, now, bpf_ntohl(ip.saddr) ^ bpf_ntohl(ip.daddr));
}

/* The XOR of the eight big-endian words of two IPv6 addresses. */
static __always_inline __u32 fold_ipv6(const __u8 *src, const __u8 *dst)
{
    __u32 folded = 0;
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __u32 a, b;
        __builtin_memcpy(&a, src + 4 * i, 4);
        __builtin_memcpy(&b, dst + 4 * i, 4);
        folded ^= bpf_ntohl(a) ^ bpf_ntohl(b);
    }
    return folded;
}

static __always_inline void handle_ipv6(struct __sk_buff *skb, __u32 net, __u8 direction, __u64 now)
{
    struct {
        __u32 ver_class_flow;
        __u16 payload_len;
        __u8 next, hop_limit;
        __u8 saddr[16], daddr[16];
    } ip;
    if (bpf_skb_load_bytes(skb, net, &ip, sizeof(ip)) < 0)
        return;
    if ((((__u8 *)&ip)[0] >> 4) != 6)
        return;
    struct sidetap_frag_key key = {};
    __builtin_memcpy(key.src, ip.saddr, 16);
    __builtin_memcpy(key.dst, ip.daddr, 16);
    __u8 next = ip.next;
    __u32 off = net + 40;
    int first_fragment = 0;
#pragma unroll
    for (int i = 0; i < SIDETAP_MAX_EXT; i++) {
        if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
            __u8 ext[2];
            if (bpf_skb_load_bytes(skb, off, ext, sizeof(ext)) < 0)
                return;
            next = ext[0];
            off += ((__u32)ext[1] + 1) * 8;
        } else if (next == IPPROTO_FRAGMENT) {
            struct {
                __u8 next, reserved;
                __u16 frag_off;
                __u32 id;
            } fh;
            if (bpf_skb_load_bytes(skb, off, &fh, sizeof(fh)) < 0)
                return;
            __u16 frag = bpf_ntohs(fh.frag_off);
            key.id = bpf_ntohl(fh.id);
            key.proto = fh.next;
            if (frag & 0xfff8) {
                if (fragment_followed(&key, now))
                    goto wanted;
                return;
            }
            first_fragment = frag & 1;
            next = fh.next;
            off += 8;
        } else {
            break;
        }
    }
    if (!transport_wanted(skb, off, next, key.src, key.dst))
        return;
    if (first_fragment)
        bpf_map_update_elem(&frags, &key, &now, BPF_ANY);
wanted:
    count(SIDETAP_CTR_PASSED);
    emit(skb, net, direction, now, fold_ipv6(ip.saddr, ip.daddr));
}

static __always_inline void handle(struct __sk_buff *skb, __u32 net, __u8 direction)
{
    __u8 version;
    if (bpf_skb_load_bytes(skb, net, &version, 1) < 0)
        return;
    __u64 now = bpf_ktime_get_ns();
    if ((version >> 4) == 4)
        handle_ipv4(skb, net, direction, now);
    else if ((version >> 4) == 6)
        handle_ipv6(skb, net, direction, now);
}

/* Only these carry IP at the network header; ARP and the rest are skipped
 * before any packet byte is read. VLAN: tags are normally in skb->vlan_tci
 * by now (the stack strips them on receive; on transmit they are pushed
 * into the frame after tc and the taps), and a frame still tagged is
 * recognised by its IP version nibble. */
static __always_inline int maybe_ip(struct __sk_buff *skb)
{
    __u16 proto = bpf_ntohs(skb->protocol);
    return proto == ETH_P_IP || proto == ETH_P_IPV6 || proto == ETH_P_8021Q || proto == ETH_P_8021AD;
}

SEC("socket")
int sidetap_socket(struct __sk_buff *skb)
{
    __u8 direction = skb->pkt_type == PACKET_OUTGOING ? SIDETAP_DIR_EGRESS : SIDETAP_DIR_INGRESS;
    /* Loopback: every packet is seen leaving and arriving; keep one copy. */
    if (direction == SIDETAP_DIR_EGRESS && cfg_skip_out_ifindex && skb->ifindex == cfg_skip_out_ifindex)
        return 0;
    count(SIDETAP_CTR_SEEN);
    if (maybe_ip(skb))
        handle(skb, 0, direction);
    return 0;
}

/* tc: the network header follows the link header; on Ethernet, VLAN tags
 * still in the frame (a VLAN device without reorder_hdr puts them there on
 * transmit; received tags are usually in skb->vlan_tci by now) are skipped:
 * up to two (802.1Q, 802.1ad/QinQ). */
static __always_inline void handle_tc(struct __sk_buff *skb, __u8 direction)
{
    count(SIDETAP_CTR_SEEN);
    if (!maybe_ip(skb))
        return;
    __u32 net = cfg_l2_len;
    if (cfg_l2_len == ETH_HLEN) {
#pragma unroll
        for (int i = 0; i < 2; i++) {
            __u16 type;
            if (bpf_skb_load_bytes(skb, net - 2, &type, sizeof(type)) < 0)
                return;
            type = bpf_ntohs(type);
            if (type != ETH_P_8021Q && type != ETH_P_8021AD && type != 0x9100)
                break;
            net += 4;
        }
    }
    handle(skb, net, direction);
}

SEC("tc")
int sidetap_tc_ingress(struct __sk_buff *skb)
{
    handle_tc(skb, SIDETAP_DIR_INGRESS);
    return TC_ACT_UNSPEC;
}

SEC("tc")
int sidetap_tc_egress(struct __sk_buff *skb)
{
    handle_tc(skb, SIDETAP_DIR_EGRESS);
    return TC_ACT_UNSPEC;
}

SEC("cgroup_skb/ingress")
int sidetap_cg_ingress(struct __sk_buff *skb)
{
    count(SIDETAP_CTR_SEEN);
    handle(skb, 0, SIDETAP_DIR_INGRESS);
    return 1;
}

SEC("cgroup_skb/egress")
int sidetap_cg_egress(struct __sk_buff *skb)
{
    count(SIDETAP_CTR_SEEN);
    handle(skb, 0, SIDETAP_DIR_EGRESS);
    return 1;
}
