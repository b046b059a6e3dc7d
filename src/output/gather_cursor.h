// GatherCursor: the part of a list of byte pieces (frames straight from the
// queue's rings) that is still to be written, handed to writev()/sendmsg()
// as iovecs and moved on by what each call took. One cursor for every
// writer (files, sockets), so partial writes are handled in one place.
//
// Contract: fill() describes at most kMaxIov pieces from the current
// position (the first one from its unwritten offset) and returns how many;
// advance(n) consumes n bytes (at most what the last fill() described);
// empty pieces are skipped; done() once every byte was consumed. The
// pieces must outlive the cursor.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sidetap::output {

class GatherCursor {
public:
    static constexpr std::size_t kMaxIov = 64;
    using Iovecs = std::array<iovec, kMaxIov>;

    explicit GatherCursor(std::span<const std::span<const std::uint8_t>> pieces) : pieces_(pieces) { skip_empty(); }

    [[nodiscard]] bool done() const { return index_ >= pieces_.size(); }

    std::size_t fill(Iovecs& iov) const {
        std::size_t count = 0;
        for (std::size_t k = index_; k < pieces_.size() && count < iov.size(); ++k, ++count) {
            const std::size_t skip = k == index_ ? offset_ : 0;
            iov[count].iov_base = const_cast<std::uint8_t*>(pieces_[k].data() + skip);
            iov[count].iov_len = pieces_[k].size() - skip;
        }
        return count;
    }

    void advance(std::size_t n) {
        while (n > 0 && index_ < pieces_.size()) {
            const std::size_t rest = pieces_[index_].size() - offset_;
            if (n < rest) {
                offset_ += n;
                return;
            }
            n -= rest;
            offset_ = 0;
            ++index_;
        }
        skip_empty();
    }

private:
    void skip_empty() {
        while (index_ < pieces_.size() && pieces_[index_].size() == offset_) {
            offset_ = 0;
            ++index_;
        }
    }

    std::span<const std::span<const std::uint8_t>> pieces_;
    std::size_t index_ = 0;   // first piece not completely written
    std::size_t offset_ = 0;  // bytes of that piece already written
};

}  // namespace sidetap::output
