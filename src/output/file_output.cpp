#include "output/file_output.h"

#include "util/error.h"

#include <algorithm>

namespace sidetap::output {

namespace {
QueueSettings compat_settings(std::size_t buffer_size) {
    QueueSettings settings;
    settings.write_buffer = buffer_size;
    settings.overflow = OverflowPolicy::Block;
    return settings;
}
}  // namespace

FileOutput::FileOutput(std::string path, std::size_t buffer_size)
    : FileOutput(FileWriterOptions{std::move(path), 0, {}}, compat_settings(buffer_size)) {}

FileOutput::FileOutput(FileWriterOptions options, const QueueSettings& given) {
    // Rotation is checked between batches, so a file can exceed rotate_size
    // by one batch: with rotation on, a batch is at most an eighth of it (a
    // full disk is then met by a rotated file, not by one oversized batch).
    QueueSettings settings = given;
    if (options.rotate_size > 0)
        settings.write_buffer = static_cast<std::size_t>(std::min<std::uint64_t>(
            settings.write_buffer, std::max<std::uint64_t>(options.rotate_size / 8, 1024)));
    if (options.batch_bytes == 0) options.batch_bytes = settings.write_buffer;
    auto writer = std::make_unique<FileWriter>(std::move(options));
    // Opened here, not on the I/O thread: an unusable path is a setup error.
    std::string error;
    if (!writer->open(error)) throw util::FatalError(error);
    queue_ = std::make_unique<QueuedOutput>(std::move(writer), settings);
}

FileOutput::~FileOutput() {
    if (queue_) queue_->close();
}

std::unique_ptr<Output> make_file_output(FileWriterOptions options, const QueueSettings& settings) {
    return std::make_unique<FileOutput>(std::move(options), settings);
}

}  // namespace sidetap::output
