#include "capture/interface_names.h"

#include <net/if.h>

#include <algorithm>
#include <cstdio>

namespace sidetap::capture {

std::string_view InterfaceNames::name(std::uint32_t ifindex) {
    if (last_ < count_ && entries_[last_].index == ifindex) return entries_[last_].view();
    for (std::size_t i = 0; i < count_; ++i)
        if (entries_[i].index == ifindex) {
            last_ = i;
            return entries_[i].view();
        }
    Entry& e = count_ < entries_.size() ? entries_[count_] : overflow_;
    e.index = ifindex;
    char text[IF_NAMESIZE] = {};
    const int len = ::if_indextoname(ifindex, text) != nullptr
                        ? std::snprintf(e.text.data(), e.text.size(), "%s", text)
                        : std::snprintf(e.text.data(), e.text.size(), "%u", ifindex);
    e.length = static_cast<std::uint8_t>(std::clamp(len, 0, static_cast<int>(e.text.size()) - 1));
    if (&e != &overflow_) last_ = count_++;
    return e.view();
}

}  // namespace sidetap::capture
