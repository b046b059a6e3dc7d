#include "capture/shard.h"

#include "sidetap_abi.h"

#include <random>

namespace sidetap::capture {

namespace {
std::uint32_t be32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | p[3];
}

constexpr std::uint16_t kEthIp = 0x0800;
constexpr std::uint16_t kEthIpv6 = 0x86dd;
constexpr std::uint16_t kVlanTags[] = {0x8100, 0x88a8, 0x9100};

// A tiny assembler: jumps are resolved to labels after the code is laid out.
class Program {
public:
    using Label = int;
    Label label() { return next_label_++; }
    void place(Label l) {
        if (static_cast<std::size_t>(l) >= at_.size()) at_.resize(static_cast<std::size_t>(l) + 1, -1);
        at_[static_cast<std::size_t>(l)] = static_cast<int>(code_.size());
    }
    void op(std::uint16_t code, std::uint32_t k) { code_.push_back(sock_filter{code, 0, 0, k}); }
    // if (A == k) goto yes (else fall through)
    void jeq(std::uint32_t k, Label yes) {
        fixups_.push_back({code_.size(), yes});
        code_.push_back(sock_filter{BPF_JMP | BPF_JEQ | BPF_K, 0, 0, k});
    }
    void ja(Label to) {
        fixups_.push_back({code_.size(), to, true});
        code_.push_back(sock_filter{BPF_JMP | BPF_JA, 0, 0, 0});
    }
    std::vector<sock_filter> finish() {
        for (const auto& f : fixups_) {
            const int target = at_.at(static_cast<std::size_t>(f.label));
            const int offset = target - static_cast<int>(f.index) - 1;
            if (f.always)
                code_[f.index].k = static_cast<std::uint32_t>(offset);
            else
                code_[f.index].jt = static_cast<std::uint8_t>(offset);
        }
        return code_;
    }

private:
    struct Fixup {
        std::size_t index;
        Label label;
        bool always = false;
    };
    std::vector<sock_filter> code_;
    std::vector<int> at_;
    std::vector<Fixup> fixups_;
    Label next_label_ = 0;
};

constexpr std::uint32_t net(std::uint32_t offset) { return static_cast<std::uint32_t>(SKF_NET_OFF) + offset; }
}  // namespace

std::uint32_t fold_addresses(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) {
    std::uint32_t folded = 0;
    for (std::size_t i = 0; i + 4 <= a.size(); i += 4) folded ^= be32(a.data() + i);
    for (std::size_t i = 0; i + 4 <= b.size(); i += 4) folded ^= be32(b.data() + i);
    return folded;
}

std::uint32_t shard_of(std::uint32_t folded, std::uint32_t seed, std::uint32_t shards) {
    return sidetap_shard_of(folded, seed, shards);
}

std::vector<sock_filter> fanout_program(std::uint32_t seed, std::uint32_t shards) {
    Program p;
    const auto hash = p.label();
    const auto other = p.label();
    // The IP header may sit behind 0, 1 or 2 VLAN tags the stack left in
    // the frame (offsets 0, 4, 8 from the network header).
    Program::Label v4[3], v6[3], tagged[2];
    for (auto& l : v4) l = p.label();
    for (auto& l : v6) l = p.label();
    for (auto& l : tagged) l = p.label();

    p.op(BPF_LD | BPF_H | BPF_ABS, static_cast<std::uint32_t>(SKF_AD_OFF + SKF_AD_PROTOCOL));
    p.jeq(kEthIp, v4[0]);
    p.jeq(kEthIpv6, v6[0]);
    for (auto tag : kVlanTags) p.jeq(tag, tagged[0]);
    p.ja(other);
    for (int depth = 0; depth < 2; ++depth) {
        // A tag: its ethertype field is 2 bytes into it.
        p.place(tagged[depth]);
        p.op(BPF_LD | BPF_H | BPF_ABS, net(4 * static_cast<std::uint32_t>(depth) + 2));
        p.jeq(kEthIp, v4[depth + 1]);
        p.jeq(kEthIpv6, v6[depth + 1]);
        if (depth == 0)
            for (auto tag : kVlanTags) p.jeq(tag, tagged[1]);
        p.ja(other);
    }
    for (std::uint32_t depth = 0; depth < 3; ++depth) {
        // IPv4: source at 12, destination at 16.
        p.place(v4[depth]);
        p.op(BPF_LD | BPF_W | BPF_ABS, net(4 * depth + 12));
        p.op(BPF_MISC | BPF_TAX, 0);
        p.op(BPF_LD | BPF_W | BPF_ABS, net(4 * depth + 16));
        p.op(BPF_ALU | BPF_XOR | BPF_X, 0);
        p.ja(hash);
        // IPv6: source at 8, destination at 24: eight words.
        p.place(v6[depth]);
        p.op(BPF_LD | BPF_W | BPF_ABS, net(4 * depth + 8));
        for (std::uint32_t word = 1; word < 8; ++word) {
            p.op(BPF_MISC | BPF_TAX, 0);
            p.op(BPF_LD | BPF_W | BPF_ABS, net(4 * depth + 8 + 4 * word));
            p.op(BPF_ALU | BPF_XOR | BPF_X, 0);
        }
        p.ja(hash);
    }
    // A = folded: sidetap_shard_of().
    p.place(hash);
    p.op(BPF_ALU | BPF_XOR | BPF_K, seed);
    p.op(BPF_ALU | BPF_MUL | BPF_K, SIDETAP_SHARD_MULTIPLIER);
    p.op(BPF_MISC | BPF_TAX, 0);
    p.op(BPF_ALU | BPF_RSH | BPF_K, 16);
    p.op(BPF_ALU | BPF_XOR | BPF_X, 0);
    p.op(BPF_ALU | BPF_MOD | BPF_K, shards == 0 ? 1 : shards);
    p.op(BPF_RET | BPF_A, 0);
    // Not IP (or a load beyond the packet, which ends the program with 0).
    p.place(other);
    p.op(BPF_RET | BPF_K, 0);
    return p.finish();
}

std::uint32_t random_shard_seed() {
    std::random_device device;
    return device();
}

}  // namespace sidetap::capture
