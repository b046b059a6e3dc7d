// Shards of a live capture (capture --threads N): which of N capture
// threads a packet belongs to.
//
// Contract:
//  - The shard is a function of the unordered pair of IP addresses only
//    (bpf/sidetap_abi.h: fold the two addresses' big-endian 32-bit words
//    with XOR, mix with a per-run seed, reduce modulo N). So a query and its
//    response, both directions of a TCP connection and every fragment of an
//    IP datagram — later fragments carry no ports — are in the same shard,
//    whatever the seed. Tunnelled traffic goes by its outer addresses.
//  - fanout_program() is the same function as a classic BPF program for
//    an AF_PACKET PACKET_FANOUT_CBPF group (its return value is the index
//    of the member socket): it reads the addresses relative to the network
//    header (SKF_NET_OFF), so it works on received and sent packets alike
//    and on any link type, and it looks behind one or two VLAN tags still
//    in the frame. Anything that is not IPv4 or IPv6 goes to shard 0.
//  - The eBPF frontends compute it in the kernel with the same inline
//    function (bpf/sidetap.bpf.c); shard_of() is the user-space copy.
#pragma once

#include <linux/filter.h>

#include <cstdint>
#include <span>
#include <vector>

namespace sidetap::capture {

// XOR of the big-endian 32-bit words of both addresses (4 or 16 bytes each).
std::uint32_t fold_addresses(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b);

// The shard (0 .. shards-1) of a folded address pair.
std::uint32_t shard_of(std::uint32_t folded, std::uint32_t seed, std::uint32_t shards);

// The classic BPF fanout program for `shards` members with `seed`.
std::vector<sock_filter> fanout_program(std::uint32_t seed, std::uint32_t shards);

// A random seed for one run.
std::uint32_t random_shard_seed();

}  // namespace sidetap::capture
