// Counts malloc/calloc/realloc calls of the process it is preloaded into; SIGUSR2 prints the
// count to stderr. Used by Benchmarks/allocations.sh to show that serving a request
// allocates nothing.
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern int __posix_memalign(void **, size_t, size_t);
static atomic_long count;
void *malloc(size_t n) { atomic_fetch_add(&count, 1); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&count, 1); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&count, 1); return __libc_realloc(p, n); }
static void dump(int sig) { char buf[64]; int n = snprintf(buf, sizeof buf, "mallocs=%ld\n", atomic_load(&count)); write(2, buf, n); }
__attribute__((constructor)) static void init(void) { signal(SIGUSR2, dump); }
