// Shards of a live capture (capture/shard.h): the kernel's fanout program
// (classic BPF, run here by a small interpreter with the kernel's
// semantics for the instructions it uses), the user-space function and the
// eBPF programs' inline function (bpf/sidetap_abi.h) put a query and its
// response, both directions of a TCP connection and every fragment of a
// datagram into the same shard, whatever the seed.
#include "capture/shard.h"

#include "sidetap_abi.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <vector>

using namespace sidetap;

namespace {

using Bytes = std::vector<std::uint8_t>;

// What the kernel hands a PACKET_FANOUT_CBPF program: skb->protocol and the
// bytes from the network header on.
struct Skb {
    std::uint16_t protocol = 0;
    Bytes net;
};

// Runs a classic BPF fanout program (the opcodes fanout_program() emits).
// A load beyond the packet ends the program with 0, as in the kernel.
std::uint32_t run_cbpf(const std::vector<sock_filter>& prog, const Skb& skb) {
    std::uint32_t a = 0, x = 0;
    for (std::size_t pc = 0; pc < prog.size(); ++pc) {
        const sock_filter& f = prog[pc];
        switch (f.code) {
            case BPF_LD | BPF_H | BPF_ABS:
            case BPF_LD | BPF_W | BPF_ABS: {
                const std::size_t size = BPF_SIZE(f.code) == BPF_H ? 2 : 4;
                const auto k = static_cast<std::int32_t>(f.k);
                if (k == SKF_AD_OFF + SKF_AD_PROTOCOL) {
                    a = skb.protocol;
                    break;
                }
                EXPECT_GE(k, SKF_NET_OFF) << "only network-relative loads";
                const std::size_t off = static_cast<std::size_t>(k - SKF_NET_OFF);
                if (off + size > skb.net.size()) return 0;
                a = 0;
                for (std::size_t i = 0; i < size; ++i) a = (a << 8) | skb.net[off + i];
                break;
            }
            case BPF_MISC | BPF_TAX: x = a; break;
            case BPF_ALU | BPF_XOR | BPF_X: a ^= x; break;
            case BPF_ALU | BPF_XOR | BPF_K: a ^= f.k; break;
            case BPF_ALU | BPF_MUL | BPF_K: a *= f.k; break;
            case BPF_ALU | BPF_RSH | BPF_K: a >>= f.k; break;
            case BPF_ALU | BPF_MOD | BPF_K: a %= f.k; break;
            case BPF_JMP | BPF_JA: pc += f.k; break;
            case BPF_JMP | BPF_JEQ | BPF_K: pc += a == f.k ? f.jt : f.jf; break;
            case BPF_RET | BPF_A: return a;
            case BPF_RET | BPF_K: return f.k;
            default: ADD_FAILURE() << "unexpected opcode " << f.code; return 0;
        }
    }
    ADD_FAILURE() << "program fell off its end";
    return 0;
}

Bytes ipv4(std::array<std::uint8_t, 4> src, std::array<std::uint8_t, 4> dst, std::uint8_t proto,
           std::uint16_t frag_field, const Bytes& payload) {
    Bytes p{0x45, 0, 0, 0, 0x12, 0x34, static_cast<std::uint8_t>(frag_field >> 8),
            static_cast<std::uint8_t>(frag_field), 64, proto, 0, 0};
    p.insert(p.end(), src.begin(), src.end());
    p.insert(p.end(), dst.begin(), dst.end());
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

Bytes ipv6(const std::array<std::uint8_t, 16>& src, const std::array<std::uint8_t, 16>& dst, std::uint8_t next,
           const Bytes& payload) {
    Bytes p{0x60, 0, 0, 0, 0, static_cast<std::uint8_t>(payload.size()), next, 64};
    p.insert(p.end(), src.begin(), src.end());
    p.insert(p.end(), dst.begin(), dst.end());
    p.insert(p.end(), payload.begin(), payload.end());
    return p;
}

Bytes ports(std::uint16_t s, std::uint16_t d, std::size_t more) {
    Bytes p{static_cast<std::uint8_t>(s >> 8), static_cast<std::uint8_t>(s), static_cast<std::uint8_t>(d >> 8),
            static_cast<std::uint8_t>(d)};
    p.resize(p.size() + more, 0xab);
    return p;
}

// A VLAN tag in front: the stack left it in the frame (skb->protocol is
// the tag's type, the network header starts at the tag's TCI).
Skb tagged(std::uint16_t outer, std::uint16_t inner, const Bytes& ip) {
    Skb skb{outer, {0x00, 0x64, static_cast<std::uint8_t>(inner >> 8), static_cast<std::uint8_t>(inner)}};
    skb.net.insert(skb.net.end(), ip.begin(), ip.end());
    return skb;
}

std::uint32_t user_space(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b, std::uint32_t seed,
                         std::uint32_t n) {
    return capture::shard_of(capture::fold_addresses(a, b), seed, n);
}

}  // namespace

TEST(Shard, FragmentsBothDirectionsAndQueryResponseShareAShardWhateverTheSeed) {
    std::mt19937 rng(12345);
    const std::array<std::uint8_t, 4> client4{192, 0, 2, 77}, server4{198, 51, 100, 53};
    std::array<std::uint8_t, 16> client6{}, server6{};
    client6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34};
    server6 = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0x53, 0, 0, 0, 0, 0, 0, 0, 0x01};
    for (const std::uint32_t n : {2u, 3u, 4u, 7u, 64u}) {
        for (int round = 0; round < 200; ++round) {
            const std::uint32_t seed = rng();
            const auto prog = capture::fanout_program(seed, n);
            const std::uint32_t want = user_space(client4, server4, seed, n);
            ASSERT_LT(want, n);
            // The eBPF programs' function: the same.
            EXPECT_EQ(want, sidetap_shard_of(capture::fold_addresses(client4, server4), seed, n));
            // UDP query and response; TCP both directions.
            const Skb query{0x0800, ipv4(client4, server4, 17, 0, ports(40000, 53, 30))};
            const Skb response{0x0800, ipv4(server4, client4, 17, 0, ports(53, 40000, 90))};
            const Skb tcp_in{0x0800, ipv4(client4, server4, 6, 0, ports(41000, 53, 16))};
            const Skb tcp_out{0x0800, ipv4(server4, client4, 6, 0, ports(53, 41000, 16))};
            // An IPv4 datagram in three fragments (MF + offset 0, MF + 185, offset 370).
            const Skb frag0{0x0800, ipv4(server4, client4, 17, 0x2000, ports(53, 40000, 1472))};
            const Skb frag1{0x0800, ipv4(server4, client4, 17, 0x2000 | 185, Bytes(1480, 0x11))};
            const Skb frag2{0x0800, ipv4(server4, client4, 17, 370, Bytes(200, 0x22))};
            for (const Skb* skb : {&query, &response, &tcp_in, &tcp_out, &frag0, &frag1, &frag2})
                ASSERT_EQ(run_cbpf(prog, *skb), want) << "seed " << seed << " shards " << n;
            // Behind one and two VLAN tags.
            ASSERT_EQ(run_cbpf(prog, tagged(0x8100, 0x0800, query.net)), want);
            ASSERT_EQ(run_cbpf(prog, tagged(0x88a8, 0x8100, tagged(0, 0x0800, response.net).net)), want);

            // IPv6: a UDP exchange and a datagram in fragments (Fragment
            // header, later fragments without ports).
            const std::uint32_t want6 = user_space(client6, server6, seed, n);
            const Skb q6{0x86dd, ipv6(client6, server6, 17, ports(40000, 53, 30))};
            const Skb r6{0x86dd, ipv6(server6, client6, 17, ports(53, 40000, 90))};
            Bytes fh0{17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef};
            Bytes fh1{17, 0, 0x05, 0x40, 0xde, 0xad, 0xbe, 0xef};
            Bytes first = fh0, later = fh1;
            const auto udp = ports(53, 40000, 1224);
            first.insert(first.end(), udp.begin(), udp.end());
            later.insert(later.end(), 600, 0x33);
            const Skb f6a{0x86dd, ipv6(server6, client6, 44, first)};
            const Skb f6b{0x86dd, ipv6(server6, client6, 44, later)};
            for (const Skb* skb : {&q6, &r6, &f6a, &f6b})
                ASSERT_EQ(run_cbpf(prog, *skb), want6) << "seed " << seed << " shards " << n;
            ASSERT_EQ(run_cbpf(prog, tagged(0x8100, 0x86dd, f6b.net)), want6);
            // Not IP (ARP), or cut short: shard 0.
            EXPECT_EQ(run_cbpf(prog, Skb{0x0806, Bytes(28, 1)}), 0u);
            EXPECT_EQ(run_cbpf(prog, Skb{0x0800, Bytes(10, 1)}), 0u);
        }
    }
}

TEST(Shard, OneShardTakesEverythingAndManyPairsSpreadOverAllShards) {
    const std::array<std::uint8_t, 4> server{10, 0, 0, 53};
    EXPECT_EQ(capture::shard_of(12345, 99, 1), 0u);
    std::mt19937 rng(7);
    for (const std::uint32_t n : {2u, 4u, 8u}) {
        const std::uint32_t seed = rng();
        std::vector<std::uint32_t> count(n);
        for (std::uint32_t i = 0; i < 20000; ++i) {
            const std::array<std::uint8_t, 4> client{100, static_cast<std::uint8_t>(i >> 16),
                                                     static_cast<std::uint8_t>(i >> 8), static_cast<std::uint8_t>(i)};
            ++count[user_space(client, server, seed, n)];
        }
        for (std::uint32_t s = 0; s < n; ++s)
            EXPECT_GT(count[s], 20000u / n * 8 / 10) << "shard " << s << " of " << n << ": " << count[s];
    }
}
