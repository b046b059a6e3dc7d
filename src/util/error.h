// The one fatal error type for setup and I/O failures outside the packet
// path. Thrown by constructors/factories, caught in main(), printed as
// "sidetap: <message>" with the exit code it carries.
#pragma once

#include <stdexcept>
#include <string>

namespace sidetap::util {

// Exit codes, documented in --help and the README.
inline constexpr int kExitOk = 0;
inline constexpr int kExitRuntime = 1;  // an input or output failed
inline constexpr int kExitUsage = 2;    // bad command line or configuration

class FatalError : public std::runtime_error {
public:
    explicit FatalError(const std::string& message, int exit_code = kExitRuntime)
        : std::runtime_error(message), exit_code_(exit_code) {}
    [[nodiscard]] int exit_code() const { return exit_code_; }

private:
    int exit_code_;
};

}  // namespace sidetap::util
