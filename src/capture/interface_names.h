// InterfaceNames: interface names by index, for Packet::interface when a
// frontend knows a packet's ifindex but not its name (eBPF records, libpcap's
// `-i any` with LINUX_SLL2 headers).
//
// Contract: name(ifindex) returns a view valid as long as this object (or,
// beyond kMaxNames interfaces, until the next call). The kernel is asked
// (if_indextoname) once per interface, when first seen; an interface that is
// already gone is named by its decimal index. No allocation.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sidetap::capture {

class InterfaceNames {
public:
    static constexpr std::size_t kMaxNames = 32;
    std::string_view name(std::uint32_t ifindex);

private:
    struct Entry {
        std::uint32_t index = 0;
        std::uint8_t length = 0;
        std::array<char, 24> text{};
        [[nodiscard]] std::string_view view() const { return {text.data(), length}; }
    };
    std::array<Entry, kMaxNames> entries_{};
    std::size_t count_ = 0;
    std::size_t last_ = 0;
    Entry overflow_;
};

}  // namespace sidetap::capture
