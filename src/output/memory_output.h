// MemoryOutput: keeps every frame in memory (tests) or counts and discards
// them (benchmarks, fuzzing) — the "capture/discard sink" of the Output
// interface. Any number of producers (a mutex serialises them: for tests,
// not for speed).
#pragma once

#include "output/output.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace sidetap::output {

class MemoryOutput final : public Output {
public:
    explicit MemoryOutput(bool keep_frames = true, std::size_t producers = 1) : keep_(keep_frames) {
        for (std::size_t i = 0; i < std::max<std::size_t>(producers, 1); ++i)
            sinks_.push_back(std::make_unique<Sink>(*this));
    }

    [[nodiscard]] std::size_t producers() const override { return sinks_.size(); }
    FrameSink& producer(std::size_t index) override { return *sinks_.at(index); }
    void flush() override {}
    void close() override { closed_ = true; }
    [[nodiscard]] OutputStats stats() const override {
        std::lock_guard lock(mutex_);
        return stats_;
    }
    [[nodiscard]] const std::string& name() const override { return name_; }

    // Only while no producer writes.
    [[nodiscard]] const std::vector<std::vector<std::uint8_t>>& frames() const { return frames_; }
    [[nodiscard]] bool closed() const { return closed_; }

private:
    class Sink final : public FrameSink {
    public:
        explicit Sink(MemoryOutput& out) : out_(out) {}
        WriteResult write(std::span<const std::uint8_t> frame) override { return out_.take(frame); }
        std::uint8_t* reserve(std::size_t size, WriteResult& result) override {
            scratch_.resize(size);
            result = WriteResult::Written;
            return scratch_.data();
        }
        void commit() override { out_.take(scratch_); }

    private:
        MemoryOutput& out_;
        std::vector<std::uint8_t> scratch_;
    };

    WriteResult take(std::span<const std::uint8_t> frame) {
        std::lock_guard lock(mutex_);
        if (keep_) frames_.emplace_back(frame.begin(), frame.end());
        ++stats_.frames_written;
        stats_.bytes_written += frame.size();
        return WriteResult::Written;
    }

    bool keep_;
    bool closed_ = false;
    std::vector<std::unique_ptr<Sink>> sinks_;
    mutable std::mutex mutex_;
    std::vector<std::vector<std::uint8_t>> frames_;
    OutputStats stats_;
    std::string name_ = "memory";
};

}  // namespace sidetap::output
