#include "core/memory_budget.h"

#include <unistd.h>

#include "core/error.h"

namespace tinyemo {

int64_t physical_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? static_cast<int64_t>(pages) * page : 0;
}

void check_memory_request(double bytes, std::string_view what) {
  const double limit = static_cast<double>(physical_memory_bytes());
  if (limit <= 0.0) return;
  TE_CHECK(bytes <= limit, "{} would need {:.3g} bytes ({:.1f} GB) of memory, more than this machine's {:.1f} GB",
           what, bytes, bytes / 1e9, limit / 1e9);
}

}  // namespace tinyemo
