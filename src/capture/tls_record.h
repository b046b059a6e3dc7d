// The user-space half of the TLS probes' ABI (bpf/tls_abi.h) that needs no
// libbpf, so that it is built and unit-tested in every configuration:
// parse_tls_record() turns one ring-buffer record into a StreamChunk
// (validated against the record's length: a record that does not fit is
// rejected, never read past), with the time still the kernel's
// (CLOCK_MONOTONIC; the source converts it).
#pragma once

#include "capture/tls_source.h"
#include "tls_abi.h"

#include <cstddef>
#include <cstdint>
#include <span>

namespace sidetap::capture {

static_assert(sizeof(sidetap_tls_tuple) == 40, "sidetap_tls_tuple layout");
static_assert(offsetof(sidetap_tls_tuple, local_port) == 32);
static_assert(offsetof(sidetap_tls_tuple, family) == 36);
static_assert(sizeof(sidetap_tls_record) == 96, "sidetap_tls_record layout");
static_assert(offsetof(sidetap_tls_record, offset) == 16);
static_assert(offsetof(sidetap_tls_record, generation) == 24);
static_assert(offsetof(sidetap_tls_record, tgid) == 32);
static_assert(offsetof(sidetap_tls_record, len) == 36);
static_assert(offsetof(sidetap_tls_record, kind) == 44);
static_assert(offsetof(sidetap_tls_record, flags) == 48);
static_assert(offsetof(sidetap_tls_record, tuple) == 56);
static_assert(sizeof(sidetap_tls_object_key) == 16);
static_assert(SIDETAP_TLS_CTR_COUNT <= SIDETAP_TLS_CTR_STRIDE, "counters of one CPU fit their cache lines");

// False when `bytes` is shorter than the header plus len, len exceeds
// SIDETAP_TLS_CHUNK, or a field has a value the ABI does not define.
// out.timestamp_ns is the record's ktime_ns.
bool parse_tls_record(std::span<const std::uint8_t> bytes, StreamChunk& out);

}  // namespace sidetap::capture
