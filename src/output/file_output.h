// FileOutput: a Frame Streams file output — a QueuedOutput (bounded queue,
// own I/O thread) over a FileWriter (START, data frames, STOP; rotation by
// size/time; reopen on SIGHUP). See queued_output.h and file_writer.h.
//
// Contract:
//  - The constructor opens the path ("-" = stdout) and writes START at once;
//    it throws util::FatalError ("cannot open output PATH: reason") if the
//    file cannot be opened. Later reopen failures (rotation, SIGHUP, a
//    full disk) are retried with backoff by the I/O thread; a write error
//    on a pipe, a device or stdout is final (see file_writer.h).
//  - FileOutput(path, buffer_size) keeps the old synchronous writer's
//    behaviour: OverflowPolicy::Block (nothing is lost), write buffer of
//    buffer_size bytes, no rotation. The CLI passes QueueSettings.
//  - Frames larger than kMaxFrameSize are refused (TooLarge, counted).
//  - close() drains, writes STOP and closes; the destructor calls it, so a
//    file always ends with STOP unless the process is killed with SIGKILL
//    (or STOP itself could not be written: then stats().failed is set).
#pragma once

#include "output/file_writer.h"
#include "output/output.h"
#include "output/queued_output.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sidetap::output {

class FileOutput final : public Output {
public:
    explicit FileOutput(std::string path, std::size_t buffer_size = 256 * 1024);
    FileOutput(FileWriterOptions options, const QueueSettings& settings);
    ~FileOutput() override;
    FileOutput(const FileOutput&) = delete;
    FileOutput& operator=(const FileOutput&) = delete;

    [[nodiscard]] std::size_t producers() const override { return queue_->producers(); }
    FrameSink& producer(std::size_t index) override { return queue_->producer(index); }
    void flush() override { queue_->flush(); }
    void close() override { queue_->close(); }
    [[nodiscard]] OutputStats stats() const override { return queue_->stats(); }
    [[nodiscard]] const std::string& name() const override { return queue_->name(); }
    void request_reopen() override { queue_->request_reopen(); }
    [[nodiscard]] bool failed() const { return queue_->stats().failed; }

private:
    std::unique_ptr<QueuedOutput> queue_;
};

// The same as std::make_unique<FileOutput>(options, settings).
std::unique_ptr<Output> make_file_output(FileWriterOptions options, const QueueSettings& settings);

}  // namespace sidetap::output
