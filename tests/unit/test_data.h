// Where the unit tests find the public captures copied into the repository
// (tests/data/public/ and, kept apart for their licence, tests/data/public-
// copyleft/; origin, commit and licence of each file in their SOURCES.md).
#pragma once

#include <algorithm>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace sidetap::test_data {

inline const std::vector<std::filesystem::path>& public_capture_dirs() {
    static const std::vector<std::filesystem::path> dirs = {SIDETAP_PUBLIC_CAPTURES,
                                                            SIDETAP_PUBLIC_COPYLEFT_CAPTURES};
    return dirs;
}

// The path of a public capture by file name, whichever folder it is in; the
// (nonexistent) path in the first folder when no folder has it, so that the
// test reading it fails with the name in its message.
inline std::string public_capture(std::string_view name) {
    for (const auto& dir : public_capture_dirs())
        if (std::filesystem::exists(dir / name)) return (dir / name).string();
    return (public_capture_dirs().front() / name).string();
}

// Every public .pcap/.pcapng file, sorted by file name.
inline std::vector<std::filesystem::path> public_captures() {
    std::vector<std::filesystem::path> files;
    for (const auto& dir : public_capture_dirs()) {
        std::error_code ec;
        for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
            const auto ext = entry.path().extension();
            if (entry.is_regular_file() && (ext == ".pcap" || ext == ".pcapng")) files.push_back(entry.path());
        }
    }
    std::sort(files.begin(), files.end(),
              [](const auto& a, const auto& b) { return a.filename() < b.filename(); });
    return files;
}

}  // namespace sidetap::test_data
