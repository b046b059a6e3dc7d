// MemoryOutput: keeps every frame in memory (tests) or counts and discards
// them (benchmarks, fuzzing) — the "capture/discard sink" of the Output
// interface.
#pragma once

#include "output/output.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sidetap::output {

class MemoryOutput final : public Output {
public:
    explicit MemoryOutput(bool keep_frames = true) : keep_(keep_frames) {}

    WriteResult write(std::span<const std::uint8_t> frame) override {
        if (keep_) frames_.emplace_back(frame.begin(), frame.end());
        ++stats_.frames_written;
        stats_.bytes_written += frame.size();
        return WriteResult::Written;
    }
    void flush() override {}
    void close() override { closed_ = true; }
    [[nodiscard]] OutputStats stats() const override { return stats_; }
    [[nodiscard]] const std::string& name() const override { return name_; }

    [[nodiscard]] const std::vector<std::vector<std::uint8_t>>& frames() const { return frames_; }
    [[nodiscard]] bool closed() const { return closed_; }

private:
    bool keep_;
    bool closed_ = false;
    std::vector<std::vector<std::uint8_t>> frames_;
    OutputStats stats_;
    std::string name_ = "memory";
};

}  // namespace sidetap::output
