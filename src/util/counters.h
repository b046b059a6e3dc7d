// Named counters for the packet path.
//
// Contract: every stage keeps its counters in a CounterSet indexed by an enum
// whose last enumerator is `Count_`; names come from a parallel constexpr
// array of string_views. Incrementing is a plain add (the packet path is
// single-threaded per pipeline); reading for reports happens on the same
// thread or after the pipeline stopped.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sidetap::util {

template <typename Enum, std::size_t N>
class CounterSet {
public:
    constexpr explicit CounterSet(const std::array<std::string_view, N>& names) : names_(names) {}

    void add(Enum which, std::uint64_t n = 1) { values_[static_cast<std::size_t>(which)] += n; }
    [[nodiscard]] std::uint64_t get(Enum which) const { return values_[static_cast<std::size_t>(which)]; }

    // Calls fn(name, value) for every counter, in enum order.
    template <typename Fn>
    void for_each(Fn&& fn) const {
        for (std::size_t i = 0; i < N; ++i) fn(names_[i], values_[i]);
    }

private:
    std::array<std::string_view, N> names_;
    std::array<std::uint64_t, N> values_{};
};

}  // namespace sidetap::util
