// Handing memory the allocator keeps free back to the kernel after a burst of allocations.
#pragma once

#include <cstddef>

namespace ipfleet {

// Returns the allocator's free pages to the kernel: tcmalloc's page heap when the program is
// linked with tcmalloc (the controller is), glibc's malloc_trim otherwise. The controller calls it
// after an apply: compiling 10,000 hosts leaves ~60 MiB free in the page heap, which the rollout
// that follows cannot reuse (its growth is in gRPC's per-connection buffers, allocated long
// before), so without it the two peaks add up. Returns which allocator was asked ("tcmalloc",
// "glibc").
const char* ReleaseFreeMemoryToOs();

// Caps the memory tcmalloc keeps in its per-thread caches (all threads together; its default is
// 32 MiB, and the controller's gRPC threads filled 13-21 MiB of it over three 10,000-host
// rollouts). No effect without tcmalloc. Returns whether tcmalloc took the setting.
bool CapAllocatorThreadCaches(size_t bytes);

}  // namespace ipfleet
