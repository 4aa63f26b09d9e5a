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

}  // namespace ipfleet
