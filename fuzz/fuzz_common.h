// Helpers shared by the fuzz targets: a bounds-checked reader over the
// fuzzer's input and an invariant check that aborts (libFuzzer and the
// standalone runner both report an abort as a crash, with the input).
//
// Every target is one LLVMFuzzerTestOneInput in its own .cpp; the same file
// links either with -fsanitize=fuzzer (real fuzzing, clang) or with
// standalone_main.cpp (corpus replay in ctest, any compiler).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

#define FUZZ_CHECK(cond)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                       \
        }                                                                                       \
    } while (0)

namespace sidetap::fuzz {

// Consumes the input front to back; reads past the end yield zeros / short
// spans, so every input is a valid (if short) program.
class Reader {
public:
    Reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}

    [[nodiscard]] bool empty() const { return pos_ >= size_; }
    [[nodiscard]] std::size_t remaining() const { return size_ - pos_; }

    std::uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    std::uint16_t u16() {
        const auto hi = u8();
        return static_cast<std::uint16_t>((hi << 8) | u8());
    }
    // Up to n bytes (fewer at the end of the input).
    std::span<const std::uint8_t> bytes(std::size_t n) {
        if (n > remaining()) n = remaining();
        std::span<const std::uint8_t> out{data_ + pos_, n};
        pos_ += n;
        return out;
    }
    std::span<const std::uint8_t> rest() { return bytes(remaining()); }

private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

// True when `inner` lies within `outer` (or is empty).
inline bool within(std::span<const std::uint8_t> inner, std::span<const std::uint8_t> outer) {
    if (inner.empty()) return true;
    return inner.data() >= outer.data() && inner.data() + inner.size() <= outer.data() + outer.size();
}

// Reads every byte so ASan checks the whole view; the result is used to keep
// the loop from being optimised away.
inline std::uint32_t touch(std::span<const std::uint8_t> bytes) {
    std::uint32_t sum = 0;
    for (auto b : bytes) sum = sum * 31u + b;
    return sum;
}

}  // namespace sidetap::fuzz
