// Counts malloc/calloc/realloc calls of the process it is preloaded into; SIGUSR2 prints the
// count to stderr, and `malloccount_value()` returns it to code that looks it up with dlsym
// (TandemCoreTests' TrackingAllocationTests). Used by Benchmarks/allocations.sh to show that serving a request
// allocates nothing.
//
// Finding where allocations come from: with MALLOCCOUNT_TRACE=N in the environment, SIGUSR1
// arms tracing (a second SIGUSR1 disarms it); while armed, every Nth counted call writes a
// record "malloc-trace #K size S" followed by its backtrace (backtrace_symbols_fd format, one
// frame a line) to the file MALLOCCOUNT_TRACE_FILE (appended; default stderr). Frames in a PIE
// executable without exported symbols show as "path(+0xOFFSET)": resolve them with
// `addr2line -f -e path OFFSET-1`. Benchmarks/allocations-pair.sh does that with ALLOC_TRACE.
#include <execinfo.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static atomic_long count;

static long trace_every;             // 0: tracing unavailable (MALLOCCOUNT_TRACE unset)
static int trace_fd = 2;
static atomic_int trace_armed;
static atomic_long trace_seen;       // counted calls since tracing was last armed
static atomic_flag trace_lock = ATOMIC_FLAG_INIT;
// Set while this thread writes a record: backtrace() may allocate, which must not recurse.
static __thread int in_trace __attribute__((tls_model("initial-exec")));

static void put_number(char *buf, size_t size, int *n, const char *label, long value) {
    *n += snprintf(buf + *n, size - *n, "%s%ld", label, value);
}

static void trace(size_t size) {
    if (!trace_every || !atomic_load_explicit(&trace_armed, memory_order_relaxed) || in_trace) return;
    long seen = atomic_fetch_add(&trace_seen, 1) + 1;
    if (seen % trace_every) return;
    in_trace = 1;
    void *frames[48];
    int depth = backtrace(frames, 48);
    char head[96];
    int n = 0;
    put_number(head, sizeof head, &n, "malloc-trace #", seen);
    put_number(head, sizeof head, &n, " size ", (long)size);
    n += snprintf(head + n, sizeof head - n, "\n");
    while (atomic_flag_test_and_set_explicit(&trace_lock, memory_order_acquire)) {}
    write(trace_fd, head, n);
    // Frame 0 is trace() itself, frame 1 the malloc/calloc/realloc wrapper.
    if (depth > 2) backtrace_symbols_fd(frames + 2, depth - 2, trace_fd);
    atomic_flag_clear_explicit(&trace_lock, memory_order_release);
    in_trace = 0;
}

void *malloc(size_t n) { atomic_fetch_add(&count, 1); trace(n); return __libc_malloc(n); }
void *calloc(size_t a, size_t b) { atomic_fetch_add(&count, 1); trace(a * b); return __libc_calloc(a, b); }
void *realloc(void *p, size_t n) { atomic_fetch_add(&count, 1); trace(n); return __libc_realloc(p, n); }
static void dump(int sig) { char buf[64]; int n = snprintf(buf, sizeof buf, "mallocs=%ld\n", atomic_load(&count)); write(2, buf, n); }
static void toggle_trace(int sig) {
    if (atomic_fetch_xor(&trace_armed, 1) == 0) atomic_store(&trace_seen, 0);
}
__attribute__((constructor)) static void init(void) {
    signal(SIGUSR2, dump);
    const char *every = getenv("MALLOCCOUNT_TRACE");
    if (!every || atol(every) <= 0) return;
    const char *path = getenv("MALLOCCOUNT_TRACE_FILE");
    if (path && *path) {
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0) trace_fd = fd;
    }
    // The first backtrace() loads libgcc_s (and allocates): do it now, not inside malloc.
    void *frame;
    backtrace(&frame, 1);
    trace_every = atol(every);
    signal(SIGUSR1, toggle_trace);
}

long malloccount_value(void) { return atomic_load(&count); }
