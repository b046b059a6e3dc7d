// DNS wire messages in presentation form, as golang-dnstap (miekg/dns)
// shows them. Used by present::Formatter; exposed for tests and other tools.
//
//  - unpack_name(): miekg/dns UnpackDomainName — follows compression
//    pointers inside `wire`, escapes . space ' @ ; ( ) " \ with a backslash
//    and non-printable bytes as \DDD, root is ".". Errors are miekg's texts
//    ("dns: buffer size too small", "dns: bad rdata", ...).
//  - first_question(): the first question as miekg's Msg.Unpack yields it
//    (a name at the very end of the message gives type/class 0). false when
//    the header or question is unparseable, there is no question, or an RR
//    section is structurally broken (name, fixed fields, rdlength; rdata
//    content is not checked): the quiet text then prints "X ".
//  - type_name()/class_name(): miekg mnemonics, "TYPE%d"/"CLASS%d" otherwise.
//  - message_text(): dig-like text in the layout of miekg's Msg.String()
//    (";; opcode: QUERY, status: NOERROR, id: N", ";; flags: ...; QUERY: ...",
//    OPT pseudosection, sections); the message is decoded with ldns
//    (ldns_wire2pkt) and resource records are rendered by ldns, so rdata
//    text may differ from miekg/dns in places. false with `error` (ldns's
//    error string) when ldns cannot parse the message.
#pragma once

#include <cstdint>
#include <span>
#include <string>

namespace sidetap::present {

bool unpack_name(std::span<const std::uint8_t> wire, std::size_t& offset, std::string& out, std::string& error);

struct Question {
    std::string name;
    std::uint16_t qtype = 0;
    std::uint16_t qclass = 0;
};
bool first_question(std::span<const std::uint8_t> wire, Question& out);

std::string type_name(std::uint16_t type);
std::string class_name(std::uint16_t klass);

bool message_text(std::span<const std::uint8_t> wire, std::string& out, std::string& error);

}  // namespace sidetap::present
