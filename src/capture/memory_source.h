// MemorySource: a PacketSource over packets held in memory, for tests and
// for replaying a capture more than once without re-reading the file.
//
// Contract: the source owns copies of the packets given to add(); next()
// returns them in order, then End. rewind() starts again from the first.
#pragma once

#include "capture/packet_source.h"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace sidetap::capture {

class MemorySource final : public PacketSource {
public:
    void add(std::uint64_t timestamp_ns, std::uint32_t link_type, std::span<const std::uint8_t> bytes,
             std::uint32_t original_length = 0) {
        packets_.push_back({timestamp_ns, link_type,
                            original_length ? original_length : static_cast<std::uint32_t>(bytes.size()),
                            std::vector<std::uint8_t>(bytes.begin(), bytes.end())});
    }

    // Copies every packet of another source (e.g. a pcap file) into memory.
    // Returns false when that source ended with an error.
    bool load(PacketSource& source) {
        Packet packet;
        Status status;
        while ((status = source.next(packet)) == Status::Packet)
            add(packet.timestamp_ns, packet.link_type, packet.data, packet.original_length);
        return status == Status::End;
    }

    Status next(Packet& out) override {
        if (position_ >= packets_.size()) return Status::End;
        const auto& p = packets_[position_++];
        out.timestamp_ns = p.timestamp_ns;
        out.link_type = p.link_type;
        out.original_length = p.original_length;
        out.data = p.bytes;
        return Status::Packet;
    }

    [[nodiscard]] const std::string& error() const override { return error_; }
    void rewind() { position_ = 0; }
    [[nodiscard]] std::size_t size() const { return packets_.size(); }

private:
    struct Stored {
        std::uint64_t timestamp_ns;
        std::uint32_t link_type;
        std::uint32_t original_length;
        std::vector<std::uint8_t> bytes;
    };
    std::vector<Stored> packets_;
    std::size_t position_ = 0;
    std::string error_;
};

}  // namespace sidetap::capture
