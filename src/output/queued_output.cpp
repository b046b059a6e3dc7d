#include "output/queued_output.h"

#include "framestream/codec.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <mutex>
#include <random>
#include <signal.h>
#include <thread>
#include <vector>

namespace sidetap::output {

namespace {
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string format_elapsed(Clock::duration d) {
    const auto ms = std::chrono::duration_cast<milliseconds>(d).count();
    char text[32];
    if (ms >= 1000) {
        std::snprintf(text, sizeof text, "%lld s", static_cast<long long>((ms + 500) / 1000));
    } else {
        std::snprintf(text, sizeof text, "%lld ms", static_cast<long long>(ms));
    }
    return text;
}

FrameQueue::Options queue_options(const QueueSettings& s) {
    FrameQueue::Options o;
    o.lanes = std::max<std::size_t>(s.producers, 1);
    o.max_frames = s.queue_frames;
    o.max_bytes = s.queue_bytes;
    o.max_frame = kMaxFrameSize;
    o.wake_bytes = std::max<std::size_t>(s.write_buffer, 1);
    return o;
}
}  // namespace

struct QueuedOutput::Impl {
    // One producer's handle: its lane of the queue.
    struct Producer final : FrameSink {
        Impl* impl = nullptr;
        std::size_t lane = 0;
        WriteResult write(std::span<const std::uint8_t> frame) override {
            WriteResult result = WriteResult::Written;
            std::uint8_t* dst = reserve(frame.size(), result);
            if (!dst) return result;
            std::memcpy(dst, frame.data(), frame.size());
            commit();
            return WriteResult::Written;
        }
        std::uint8_t* reserve(std::size_t size, WriteResult& result) override { return impl->reserve(lane, size, result); }
        void commit() override { impl->queue.commit(lane); }
    };

    Impl(std::unique_ptr<FrameWriter> w, const QueueSettings& s)
        : settings(s),
          writer(std::move(w)),
          name(writer->describe()),
          queue(queue_options(s)),
          producers(queue.lanes()),
          batch_bytes(std::max<std::size_t>(s.write_buffer, 1)),
          wake_bytes(std::max<std::size_t>(std::min(batch_bytes, queue.lane_byte_capacity() / 4), 1)),
          wake_frames(std::max<std::size_t>(queue.lane_frame_capacity() / 4, 1)),
          rng(std::random_device{}()) {
        for (std::size_t i = 0; i < producers.size(); ++i) {
            producers[i].impl = this;
            producers[i].lane = i;
        }
    }

    // ---- shared ----
    const QueueSettings settings;
    const std::unique_ptr<FrameWriter> writer;
    const std::string name;
    FrameQueue queue;
    std::vector<Producer> producers;

    std::atomic<std::uint64_t> frames_written{0};
    std::atomic<std::uint64_t> bytes_written{0};
    std::atomic<std::uint64_t> frames_dropped{0};
    std::atomic<std::uint64_t> frames_too_large{0};
    std::atomic<std::uint64_t> write_errors{0};
    std::atomic<std::uint64_t> reconnects{0};
    std::atomic<std::uint64_t> open_failures{0};
    std::atomic<std::uint64_t> frames_unconfirmed{0};
    std::atomic<bool> connected{false};
    std::atomic<bool> failed{false};
    std::atomic<bool> closing{false};
    std::atomic<Clock::rep> drain_deadline{0};  // valid once closing is set

    std::atomic<bool> flush_requested{false};
    std::atomic<bool> reopen_requested{false};

    std::mutex close_mutex;
    bool closed = false;
    std::thread thread;

    // ---- I/O thread only ----
    FrameQueue::Batch batch;
    const std::size_t batch_bytes;
    const std::size_t wake_bytes;
    const std::size_t wake_frames;
    bool open = false;
    bool ever_opened = false;
    std::uint32_t consecutive_failures = 0;
    bool proving = false;             // opened, but no batch got through yet
    unsigned backoff_level = 0;
    Clock::time_point next_attempt{};
    Clock::time_point next_flush{};
    std::size_t flush_frames = 0;     // frames still to write for a flush-everything
    bool outage_logged = false;
    std::string last_error;
    std::uint64_t drops_logged = 0;   // also touched by close() after the join
    Clock::time_point last_drop_log{};
    std::minstd_rand rng;

    [[nodiscard]] bool over_threshold() const { return queue.bytes() >= wake_bytes || queue.size() >= wake_frames; }

    // Producer side (lane `lane`).
    std::uint8_t* reserve(std::size_t lane, std::size_t size, WriteResult& result) {
        if (size == 0 || size > kMaxFrameSize) {
            frames_too_large.fetch_add(1, std::memory_order_relaxed);
            result = WriteResult::TooLarge;
            return nullptr;
        }
        // After giving up or closing, the queue refuses too; looking here
        // first keeps the common "failed" case off the queue's lines.
        if (failed.load(std::memory_order_acquire) || closing.load(std::memory_order_acquire)) {
            frames_dropped.fetch_add(1, std::memory_order_relaxed);
            result = WriteResult::Failed;
            return nullptr;
        }
        FrameQueue::Push push = FrameQueue::Push::Queued;
        std::uint8_t* dst = queue.reserve(lane, size, settings.overflow, push);
        switch (push) {
            case FrameQueue::Push::Queued: result = WriteResult::Written; return dst;
            case FrameQueue::Push::Full:
                frames_dropped.fetch_add(1, std::memory_order_relaxed);
                result = WriteResult::Dropped;
                return nullptr;
            case FrameQueue::Push::Closed:
                // Gave up or closing while waiting for room (Block).
                frames_dropped.fetch_add(1, std::memory_order_relaxed);
                result = WriteResult::Failed;
                return nullptr;
            case FrameQueue::Push::TooLarge: break;
        }
        frames_too_large.fetch_add(1, std::memory_order_relaxed);
        result = WriteResult::TooLarge;
        return nullptr;
    }

    // ---- I/O thread ----
    enum class Wake { ClosingOnly, Any };

    void wait_until(Clock::time_point deadline, Wake mode) {
        const bool was_closing = closing.load(std::memory_order_acquire);
        queue.wait(deadline, mode == Wake::Any, [&] {
            if (!was_closing && closing.load(std::memory_order_acquire)) return true;
            if (mode == Wake::ClosingOnly) return false;
            return flush_requested.load(std::memory_order_relaxed) || reopen_requested.load(std::memory_order_relaxed);
        });
    }

    [[nodiscard]] Clock::time_point deadline_of_drain() const {
        return Clock::time_point(Clock::duration(drain_deadline.load(std::memory_order_acquire)));
    }

    Clock::duration backoff_delay() {
        const auto initial = std::max<milliseconds::rep>(settings.reconnect_initial.count(), 1);
        const auto max = std::max<milliseconds::rep>(settings.reconnect_max.count(), initial);
        milliseconds::rep cap = initial;
        for (unsigned i = 0; i < backoff_level && cap < max; ++i) cap = std::min(max, cap * 2);
        if (backoff_level < 64) ++backoff_level;
        // Full jitter over [initial, cap]: the floor keeps a dead collector
        // from being hammered, the spread keeps many senders from retrying
        // in lockstep.
        std::uniform_int_distribution<milliseconds::rep> pick(initial, cap);
        return milliseconds(pick(rng));
    }

    void log_drops(Clock::time_point now, bool final) {
        if (!final && now - last_drop_log < settings.drop_log_interval) return;
        const std::uint64_t total = frames_dropped.load(std::memory_order_relaxed);
        if (total != drops_logged) {
            std::fprintf(stderr, "sidetap: dropped %llu messages for %s in the last %s\n",
                         static_cast<unsigned long long>(total - drops_logged), name.c_str(),
                         format_elapsed(now - last_drop_log).c_str());
        }
        drops_logged = total;
        last_drop_log = now;
    }

    void drop_queued() {
        const std::size_t n = queue.discard_all();
        if (n != 0) frames_dropped.fetch_add(n, std::memory_order_relaxed);
    }

    // Ends the writer's stream; false when it could not be ended properly.
    bool close_writer() {
        const bool ok = writer->close();
        open = false;
        connected.store(false, std::memory_order_release);
        const std::uint64_t total = writer->unconfirmed_frames();
        const std::uint64_t before = frames_unconfirmed.exchange(total, std::memory_order_relaxed);
        if (total > before)
            std::fprintf(stderr,
                         "sidetap: %s: %llu messages written before the connection ended were not confirmed as read "
                         "by the collector (Frame Streams has no acknowledgements): they may be lost\n",
                         name.c_str(), static_cast<unsigned long long>(total - before));
        return ok;
    }

    void fail(const std::string& line) {
        std::fprintf(stderr, "sidetap: %s; further messages are dropped\n", line.c_str());
        failed.store(true, std::memory_order_release);
        queue.close();  // producers waiting for room (Block) give up too
        drop_queued();
    }

    void give_up(const std::string& error) {
        fail("giving up on " + name + " after " + std::to_string(consecutive_failures) + " failed attempts: " + error);
    }

    void try_open(Clock::time_point now) {
        std::string error;
        if (writer->open(error)) {
            open = true;
            connected.store(true, std::memory_order_release);
            if (ever_opened) reconnects.fetch_add(1, std::memory_order_relaxed);
            ever_opened = true;
            if (outage_logged)
                std::fprintf(stderr, "sidetap: %s: %s\n", name.c_str(), reconnects.load() ? "connected again" : "connected");
            outage_logged = false;
            last_error.clear();
            // An open proves nothing while frames wait: the series of
            // failures ends with the first batch that gets through.
            proving = true;
            if (queue.size() == 0) {
                consecutive_failures = 0;
                backoff_level = 0;
            }
            return;
        }
        ++consecutive_failures;
        open_failures.fetch_add(1, std::memory_order_relaxed);
        if (settings.reconnect_attempts && consecutive_failures >= *settings.reconnect_attempts) {
            give_up(error);
            return;
        }
        if (!outage_logged || error != last_error) {
            std::fprintf(stderr, "sidetap: %s: %s; retrying\n", name.c_str(), error.c_str());
            outage_logged = true;
            last_error = error;
        }
        next_attempt = now + backoff_delay();
    }

    // The connection (or file) failed: close it and reconnect with backoff.
    // The frames of the failed batch are still queued.
    void lost(const std::string& reason) {
        write_errors.fetch_add(1, std::memory_order_relaxed);
        // A cut pipe cannot be restarted: a second START in the middle of
        // the stream would corrupt it for its reader.
        const bool final = !writer->reopen_after_failure();
        if (!final && !outage_logged) {
            std::fprintf(stderr, "sidetap: %s: %s; retrying\n", name.c_str(), reason.c_str());
            outage_logged = true;
            last_error = reason;
        }
        (void)close_writer();
        if (final) {
            fail(name + " failed: " + reason);
            return;
        }
        // A stream that fails with frames waiting before any batch got
        // through since it was opened is one more failure in the series
        // (also when it was opened while nothing waited); a connection
        // that closes while idle is not.
        if (proving && queue.size() != 0) {
            ++consecutive_failures;
            if (settings.reconnect_attempts && consecutive_failures >= *settings.reconnect_attempts) {
                give_up(reason);
                return;
            }
        }
        next_attempt = Clock::now() + backoff_delay();
    }

    void reopen_now(Clock::time_point now) {
        // A file left without STOP was logged by its writer; the next one
        // starts cleanly.
        if (!close_writer()) write_errors.fetch_add(1, std::memory_order_relaxed);
        next_attempt = now;
        try_open(now);
    }

    // Writes one batch of at most batch_bytes (at least one frame), straight
    // from the queue. Returns the number of frames written, 0 after a failure.
    std::size_t write_batch() {
        const std::size_t n = queue.collect(batch, batch_bytes);
        if (n == 0) return 0;
        std::string error;
        if (!writer->write(batch.pieces(), error)) {
            lost(error.empty() ? std::string("write failed") : error);
            return 0;
        }
        frames_written.fetch_add(n, std::memory_order_relaxed);
        bytes_written.fetch_add(batch.bytes(), std::memory_order_relaxed);
        proving = false;
        consecutive_failures = 0;
        backoff_level = 0;
        queue.release(batch);
        return n;
    }

    void loop() {
        Clock::time_point now = Clock::now();
        next_flush = now + settings.flush_interval;
        last_drop_log = now;
        next_attempt = now;
        for (;;) {
            now = Clock::now();
            log_drops(now, false);
            const auto next_log = last_drop_log + settings.drop_log_interval;
            const bool is_closing = closing.load(std::memory_order_acquire);
            if (is_closing && (queue.size() == 0 || failed.load(std::memory_order_acquire) ||
                               now >= deadline_of_drain()))
                return;
            if (failed.load(std::memory_order_acquire)) {
                drop_queued();  // frames pushed just before write() saw `failed`
                wait_until(next_log, Wake::ClosingOnly);
                continue;
            }
            if (!open) {
                reopen_requested.store(false, std::memory_order_relaxed);  // the next open is fresh anyway
                if (now < next_attempt) {
                    auto until = std::min(next_attempt, next_log);
                    if (is_closing) until = std::min(until, deadline_of_drain());
                    wait_until(until, Wake::ClosingOnly);
                    continue;
                }
                try_open(now);
                continue;
            }
            // Between batches: rotation and SIGHUP.
            if (reopen_requested.exchange(false, std::memory_order_relaxed) && writer->reopen_on_request()) {
                reopen_now(now);
                continue;
            }
            if (writer->wants_reopen(now)) {
                reopen_now(now);
                continue;
            }
            // A producer found its lane full (Block waits, Drop loses frames):
            // everything goes out now, not at the next threshold.
            const bool flush_now = flush_requested.exchange(false, std::memory_order_relaxed) | queue.take_starved();
            if (flush_now || is_closing || now >= next_flush) {
                flush_frames = std::max(flush_frames, queue.size());
                if (now >= next_flush) next_flush = now + settings.flush_interval;
            }
            if (flush_frames > 0 || over_threshold()) {
                if (writer->broken()) {
                    lost("connection closed by the peer");
                    continue;
                }
                const std::size_t n = write_batch();
                if (n == 0 && open) flush_frames = 0;  // nothing was queued after all
                flush_frames = flush_frames > n ? flush_frames - n : 0;
                continue;
            }
            if (writer->broken()) {
                lost("connection closed by the peer");
                continue;
            }
            wait_until(std::min(next_flush, next_log), Wake::Any);
        }
    }

    void run() {
        try {
            loop();
        } catch (const std::exception& e) {
            // Nothing in the writers should throw; if something does
            // (bad_alloc), the output stops cleanly instead of terminating.
            std::fprintf(stderr, "sidetap: %s: output thread failed: %s\n", name.c_str(), e.what());
            failed.store(true, std::memory_order_release);
        }
        if (open && !close_writer()) failed.store(true, std::memory_order_release);
        // Frames still queued now were never delivered (drain deadline, or no
        // connection at exit): that is a failed output, not a clean end.
        if (const std::size_t left = queue.size(); left != 0 && !failed.load(std::memory_order_acquire)) {
            std::fprintf(stderr, "sidetap: %s: %zu messages could not be delivered before exit\n", name.c_str(), left);
            failed.store(true, std::memory_order_release);
        }
        drop_queued();
        queue.close();
    }

    void close() {
        std::lock_guard close_lock(close_mutex);
        if (closed) return;
        closed = true;
        drain_deadline.store((Clock::now() + settings.drain_timeout).time_since_epoch().count(),
                             std::memory_order_release);
        closing.store(true, std::memory_order_release);
        // Producers are refused from now on (Block waits end); the I/O
        // thread drains what is queued.
        queue.close();
        if (thread.joinable()) thread.join();
        // The I/O thread is gone: this thread is the consumer now. Anything a
        // racing producer pushed at the last moment is still accounted for.
        drop_queued();
        log_drops(Clock::now(), true);
    }
};

QueuedOutput::QueuedOutput(std::unique_ptr<FrameWriter> writer, const QueueSettings& settings)
    : impl_(std::make_unique<Impl>(std::move(writer), settings)) {
    impl_->thread = std::thread([impl = impl_.get()] {
        // A pipe whose reader went away must give EPIPE here, not kill the
        // process, whatever the process does with SIGPIPE (the CLI ignores it).
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        impl->run();
    });
}

QueuedOutput::~QueuedOutput() { close(); }

std::size_t QueuedOutput::producers() const { return impl_->producers.size(); }

FrameSink& QueuedOutput::producer(std::size_t index) { return impl_->producers.at(index); }

void QueuedOutput::flush() {
    impl_->flush_requested.store(true, std::memory_order_relaxed);
    impl_->queue.wake_consumer();
}

void QueuedOutput::close() { impl_->close(); }

void QueuedOutput::request_reopen() {
    impl_->reopen_requested.store(true, std::memory_order_relaxed);
    impl_->queue.wake_consumer();
}

const std::string& QueuedOutput::name() const { return impl_->name; }

OutputStats QueuedOutput::stats() const {
    OutputStats s;
    s.frames_written = impl_->frames_written.load(std::memory_order_relaxed);
    s.bytes_written = impl_->bytes_written.load(std::memory_order_relaxed);
    s.frames_dropped = impl_->frames_dropped.load(std::memory_order_relaxed);
    s.frames_too_large = impl_->frames_too_large.load(std::memory_order_relaxed);
    s.write_errors = impl_->write_errors.load(std::memory_order_relaxed);
    s.reconnects = impl_->reconnects.load(std::memory_order_relaxed);
    s.open_failures = impl_->open_failures.load(std::memory_order_relaxed);
    s.frames_unconfirmed = impl_->frames_unconfirmed.load(std::memory_order_relaxed);
    s.queue_depth = impl_->queue.size();
    s.connected = impl_->connected.load(std::memory_order_acquire);
    s.failed = impl_->failed.load(std::memory_order_acquire);
    return s;
}

}  // namespace sidetap::output
