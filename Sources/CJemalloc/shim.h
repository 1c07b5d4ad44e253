// jemalloc's non-standard API (Debian: libjemalloc-dev): mallctl, mallocx, dallocx.
// The MALLOCX_* flag macros are function-like and do not import into Swift, so the
// helpers below spell them out.
#include <jemalloc/jemalloc.h>

static inline int loram_mallocx_flags(size_t alignment, unsigned arena) {
    // MALLOCX_ALIGN(a) | MALLOCX_ARENA(a) | MALLOCX_TCACHE_NONE
    return MALLOCX_ALIGN(alignment) | MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
}

static inline int loram_dallocx_flags(unsigned arena) {
    return MALLOCX_ARENA(arena) | MALLOCX_TCACHE_NONE;
}

static inline int loram_nallocx_flags(size_t alignment) {
    // MALLOCX_ALIGN(a): the size class nallocx reports for a request at that alignment.
    return MALLOCX_ALIGN(alignment);
}
