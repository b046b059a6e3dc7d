// The stream that `read` and `listen` print text, YAML or JSON to.
//
// Contract:
//  - open_text_stream("-") writes to the standard output's descriptor
//    through a stdio cookie stream whose writes wait for POLLOUT on EAGAIN
//    (a non-blocking stdout inherited from a parent) instead of losing
//    text; any other name is opened with fopen("w") and throws
//    util::FatalError ("cannot open NAME: reason") when it cannot be.
//    Both are fully buffered (64 KiB).
//  - A failed write (EPIPE: the reader of `| head` went away) sets the
//    stream's error indicator: callers check std::ferror() to stop early.
//  - close_text_stream() flushes and closes (the standard output's
//    descriptor itself stays open) and returns false — after one line on
//    stderr naming the reason — when any text could not be written.
//    nullptr is accepted and is a success.
#pragma once

#include <cstdio>
#include <string>

namespace sidetap::output {

std::FILE* open_text_stream(const std::string& name);
bool close_text_stream(std::FILE* stream);

}  // namespace sidetap::output
