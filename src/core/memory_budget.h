// Refusing work that cannot fit before allocating it: a size taken from an
// option or a file header ("--hidden 1e8", a batch of a million images) is
// checked against the machine's physical memory, so the user reads what and
// how much instead of a bare std::bad_alloc (or the OOM killer).
#pragma once

#include <cstdint>
#include <string_view>

namespace tinyemo {

// Physical memory of the machine in bytes (sysconf); 0 when unknown.
int64_t physical_memory_bytes();

// Throws tinyemo::Error when `bytes` (a double, so that products of hostile
// sizes cannot overflow) is more than the physical memory: "<what> would
// need 4.0e+16 bytes (40000000.0 GB), more than this machine's 23.4 GB".
void check_memory_request(double bytes, std::string_view what);

}  // namespace tinyemo
