// ExtraTemplate: the text of --extra / ?extra=, with placeholders expanded
// per message from where it was seen (dns::Origin).
//
// Contract:
//  - parse() reads the text once, at startup, into literal pieces and
//    placeholder ids. `{{` and `}}` are literal braces; `{name}` is a
//    placeholder (kPlaceholderNames); an unknown name, an unclosed `{` or a
//    lone `}` is an error (parse returns nullopt and says which).
//  - bind() substitutes the values that are the same for every message of
//    one pipeline ({host}, {shard}, {cgroup}): a template left with no
//    per-message placeholder is constant() and costs nothing per message.
//  - render() writes the text for one message into a fixed buffer owned by
//    the caller: no allocation, no exception. Output longer than
//    kMaxRendered bytes is cut there (render() reports it, the pipeline
//    counts it as extra_truncated). A placeholder with no value for the
//    message expands to the empty string.
//  - Values: {interface} the capture interface (live: its name; pcapng: the
//    interface's if_name, else its index; classic pcap: empty), {vlan} the
//    outermost VLAN id (decimal; empty when untagged), {tunnel} the outermost
//    tunnel removed: "KIND SRC>DST", with " id=N" when the tunnel has an id
//    (VNI, GRE key, ERSPAN session, TEID), {cgroup} the --cgroup directory,
//    {pid} and {comm} the TLS-probed process, {shard} the capture thread
//    (0..N-1), {host} the host name, {file} the replayed file's base name,
//    {frame} the packet's number in its file (from 1, as Wireshark counts).
#pragma once

#include "dns/message.h"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sidetap::dnstap {

enum class Placeholder : std::uint8_t {
    Interface,
    Vlan,
    Tunnel,
    Cgroup,
    Pid,
    Comm,
    Shard,
    Host,
    File,
    Frame,
    Count_
};
inline constexpr std::array<std::string_view, static_cast<std::size_t>(Placeholder::Count_)> kPlaceholderNames{
    "interface", "vlan", "tunnel", "cgroup", "pid", "comm", "shard", "host", "file", "frame"};

// Names seen in origins (interfaces, files, process names), interned into
// fixed storage: ids are stable for the table's lifetime; nothing is
// allocated after construction. A name that does not fit (more than
// kMaxNames names or kArenaBytes bytes in all) gets Origin::kNoName.
class NameTable {
public:
    static constexpr std::size_t kMaxNames = 1024;
    static constexpr std::size_t kArenaBytes = 32 * 1024;
    static constexpr std::size_t kMaxNameBytes = 255;  // longer names are cut

    NameTable();
    // The id of `name` (added when new); kNoName when the table is full.
    // The last name looked up is remembered: a repeated name costs one
    // comparison.
    std::uint16_t intern(std::string_view name);
    [[nodiscard]] std::string_view name(std::uint16_t id) const;
    [[nodiscard]] std::uint64_t full() const { return full_; }

private:
    std::uint16_t find_or_add(std::string_view name);
    std::unique_ptr<char[]> arena_;
    std::size_t used_ = 0;
    std::array<std::uint32_t, kMaxNames> offset_{};
    std::array<std::uint16_t, kMaxNames> length_{};
    std::size_t count_ = 0;
    std::uint16_t last_ = dns::Origin::kNoName;
    std::uint64_t full_ = 0;
};

// Values the same for every message of a pipeline.
struct TemplateConstants {
    std::string host;
    std::string cgroup;
    std::size_t shard = 0;
};

class ExtraTemplate {
public:
    static constexpr std::size_t kMaxRendered = 4096;
    using Buffer = std::array<std::uint8_t, kMaxRendered>;

    // nullopt and `error` ("unknown placeholder {x}", ...) when the text is
    // not a valid template.
    static std::optional<ExtraTemplate> parse(std::string_view text, std::string& error);

    // The template with the pipeline's constants substituted.
    [[nodiscard]] ExtraTemplate bind(const TemplateConstants& constants) const;
    // No per-message placeholder: text() is the whole extra.
    [[nodiscard]] bool constant() const;
    // The text of a constant template (literal braces resolved).
    [[nodiscard]] std::string text() const;
    // Whether a placeholder is used (the pipeline collects only those facts).
    [[nodiscard]] bool uses(Placeholder p) const;
    // The source text, for telling templates apart.
    [[nodiscard]] const std::string& source() const { return source_; }

    // Writes the extra of a message into `out`; returns its length. Sets
    // `truncated` when the text was cut at kMaxRendered.
    std::size_t render(const dns::Origin& origin, const NameTable& names, Buffer& out, bool& truncated) const;

    friend bool operator==(const ExtraTemplate& a, const ExtraTemplate& b) { return a.pieces_ == b.pieces_; }

private:
    struct Piece {
        bool literal = true;
        Placeholder placeholder = Placeholder::Count_;
        std::string text;  // literal pieces
        friend bool operator==(const Piece&, const Piece&) = default;
    };
    std::vector<Piece> pieces_;
    std::string source_;
};

}  // namespace sidetap::dnstap
