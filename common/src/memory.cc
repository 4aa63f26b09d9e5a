#include "ipfleet/common/memory.h"

#include <dlfcn.h>
#include <malloc.h>

namespace ipfleet {

const char* ReleaseFreeMemoryToOs() {
  // Looked up at run time: tcmalloc is an optional link-time choice of the controller executable
  // (not in sanitizer builds), so this library cannot name it.
  using Release = void (*)();
  static const Release tcmalloc_release =
      reinterpret_cast<Release>(::dlsym(RTLD_DEFAULT, "MallocExtension_ReleaseFreeMemory"));
  if (tcmalloc_release != nullptr) {
    tcmalloc_release();
    return "tcmalloc";
  }
  ::malloc_trim(0);
  return "glibc";
}

bool CapAllocatorThreadCaches(size_t bytes) {
  using SetProperty = int (*)(const char*, size_t);
  auto set = reinterpret_cast<SetProperty>(::dlsym(RTLD_DEFAULT, "MallocExtension_SetNumericProperty"));
  return set != nullptr && set("tcmalloc.max_total_thread_cache_bytes", bytes) != 0;
}

}  // namespace ipfleet
