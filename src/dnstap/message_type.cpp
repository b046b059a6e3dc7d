#include "dnstap/message_type.h"

#include <cctype>
#include <iterator>

namespace sidetap::dnstap {

std::string_view to_string(MessageType type) {
    static constexpr std::string_view names[] = {
        "UNKNOWN",         "AUTH_QUERY",     "AUTH_RESPONSE",  "RESOLVER_QUERY",     "RESOLVER_RESPONSE",
        "CLIENT_QUERY",    "CLIENT_RESPONSE", "FORWARDER_QUERY", "FORWARDER_RESPONSE", "STUB_QUERY",
        "STUB_RESPONSE",   "TOOL_QUERY",     "TOOL_RESPONSE",  "UPDATE_QUERY",       "UPDATE_RESPONSE"};
    const auto i = static_cast<std::size_t>(type);
    return i < std::size(names) ? names[i] : names[0];
}

std::string_view short_name(MessageType type) {
    static constexpr std::string_view names[] = {"??", "AQ", "AR", "RQ", "RR", "CQ", "CR", "FQ",
                                                 "FR", "SQ", "SR", "TQ", "TR", "UQ", "UR"};
    const auto i = static_cast<std::size_t>(type);
    return i < std::size(names) ? names[i] : names[0];
}

std::optional<std::uint32_t> parse_type_list(std::string_view text, std::string& error) {
    std::uint32_t bits = 0;
    while (!text.empty()) {
        const auto comma = text.find(',');
        auto item = text.substr(0, comma);
        text = comma == std::string_view::npos ? std::string_view{} : text.substr(comma + 1);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (item.empty()) continue;
        std::string upper(item);
        for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        bool found = false;
        for (unsigned v = 1; v <= 14 && !found; ++v) {
            const auto type = static_cast<MessageType>(v);
            if (upper == to_string(type) || upper == short_name(type)) {
                bits |= type_bit(type);
                found = true;
            }
        }
        if (!found) {
            error = "unknown message type '" + std::string(item) + "' (use e.g. CLIENT_QUERY or CQ)";
            return std::nullopt;
        }
    }
    if (bits == 0) {
        error = "empty message type list";
        return std::nullopt;
    }
    return bits;
}

}  // namespace sidetap::dnstap
