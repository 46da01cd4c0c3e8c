#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <sys/vfs.h>
#include "CShims.h"

const int tandem_O_DIRECT = O_DIRECT;
const int tandem_RWF_DSYNC = RWF_DSYNC;
const int tandem_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
const int tandem_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
const int tandem_FALLOC_FL_ZERO_RANGE = FALLOC_FL_ZERO_RANGE;

void tandem_set_errno(int value) { errno = value; }

int tandem_blk_getsize64(int fd, unsigned long long *size) { return ioctl(fd, BLKGETSIZE64, size); }

long long tandem_fs_type(int fd) {
    struct statfs fs;
    return fstatfs(fd, &fs) == 0 ? (long long)fs.f_type : -1;
}
int tandem_blk_sszget(int fd, int *sectorSize) { return ioctl(fd, BLKSSZGET, sectorSize); }

int tandem_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    if (rc == 0) { *pid = cred.pid; *uid = cred.uid; *gid = cred.gid; }
    return rc;
}

int tandem_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }

int tandem_set_thread_nice(int nice) { return setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice); }

// OpenSSL's TLS record layer allocates three 40-byte blocks for every record it writes and
// one for every record it reads, and frees them at once: a heap allocation per replicated
// write. Installed before OpenSSL's first allocation, these functions give every block a
// 16-byte header holding its capacity; blocks of up to 64 bytes are recycled through a
// per-thread free list (a list per thread needs no lock; a block freed on another thread
// joins that thread's list), larger ones go to malloc. The lists are bounded and never
// shrink: at most 4096 blocks, 320 KiB, per thread.
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

enum { SSL_SMALL_BYTES = 64, SSL_HEADER_BYTES = 16, SSL_CACHED_MAX = 4096 };
static __thread void *ssl_cached;
static __thread unsigned ssl_cached_count;
static __thread unsigned long ssl_reused, ssl_allocated;

static size_t ssl_capacity(const void *pointer) {
    size_t capacity;
    memcpy(&capacity, (const unsigned char *)pointer - SSL_HEADER_BYTES, sizeof capacity);
    return capacity;
}

static void *ssl_malloc(size_t count, const char *file, int line) {
    (void)file; (void)line;
    if (count <= SSL_SMALL_BYTES && ssl_cached) {
        void *pointer = ssl_cached;
        memcpy(&ssl_cached, pointer, sizeof ssl_cached);
        ssl_cached_count--;
        ssl_reused++;
        return pointer;
    }
    size_t capacity = count <= SSL_SMALL_BYTES ? SSL_SMALL_BYTES : count;
    unsigned char *block = malloc(SSL_HEADER_BYTES + capacity);
    if (!block) return NULL;
    memcpy(block, &capacity, sizeof capacity);
    if (capacity == SSL_SMALL_BYTES) ssl_allocated++;
    return block + SSL_HEADER_BYTES;
}

static void ssl_free(void *pointer, const char *file, int line) {
    (void)file; (void)line;
    if (!pointer) return;
    if (ssl_capacity(pointer) == SSL_SMALL_BYTES && ssl_cached_count < SSL_CACHED_MAX) {
        memcpy(pointer, &ssl_cached, sizeof ssl_cached);
        ssl_cached = pointer;
        ssl_cached_count++;
        return;
    }
    free((unsigned char *)pointer - SSL_HEADER_BYTES);
}

static void *ssl_realloc(void *pointer, size_t count, const char *file, int line) {
    if (!pointer) return ssl_malloc(count, file, line);
    if (count == 0) {
        ssl_free(pointer, file, line);
        return NULL;
    }
    size_t capacity = ssl_capacity(pointer);
    if (count <= capacity) return pointer;
    if (capacity > SSL_SMALL_BYTES) {
        unsigned char *block = realloc((unsigned char *)pointer - SSL_HEADER_BYTES, SSL_HEADER_BYTES + count);
        if (!block) return NULL;
        memcpy(block, &count, sizeof count);
        return block + SSL_HEADER_BYTES;
    }
    void *moved = ssl_malloc(count, file, line);
    if (!moved) return NULL;
    memcpy(moved, pointer, capacity);
    ssl_free(pointer, file, line);
    return moved;
}

int tandem_openssl_cache_small_blocks(void) {
    return CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free);
}

void tandem_openssl_small_block_counts(unsigned long *reused, unsigned long *allocated) {
    *reused = ssl_reused;
    *allocated = ssl_allocated;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#include <string.h>

int tandem_crc32c_hw_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}

// The crc32 instruction has a latency of three cycles and a throughput of one per cycle, so
// a single dependent chain uses a third of it. Long buffers are checksummed as three
// independent streams of equal length, whose CRCs are then combined: appending n zero bytes
// to a CRC is a linear map over GF(2), tabulated once per stream length (8 KiB, 256 bytes).
enum { CRC_LONG = 8192, CRC_SHORT = 256 };
static uint32_t crc_long_zeros[4][256];
static uint32_t crc_short_zeros[4][256];

static uint32_t gf2_times(const uint32_t *matrix, uint32_t vector) {
    uint32_t sum = 0;
    for (; vector; vector >>= 1, matrix++)
        if (vector & 1) sum ^= *matrix;
    return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *matrix) {
    for (int n = 0; n < 32; n++) square[n] = gf2_times(matrix, matrix[n]);
}

/// The operator appending `bytes` zero bytes (a power of two) to a raw CRC32C register.
static void crc_zeros_operator(uint32_t *even, size_t bytes) {
    uint32_t odd[32];
    odd[0] = 0x82F63B78u;  // one zero bit: the reflected Castagnoli polynomial…
    for (int n = 1; n < 32; n++) odd[n] = 1u << (n - 1);  // …or a shift
    gf2_square(even, odd);  // two zero bits
    gf2_square(odd, even);  // four
    for (;;) {
        gf2_square(even, odd);  // 8 bits = 1 byte, then 4, 16, … bytes
        bytes >>= 1;
        if (bytes == 0) return;
        gf2_square(odd, even);  // 2, 8, 32, … bytes
        bytes >>= 1;
        if (bytes == 0) {
            memcpy(even, odd, sizeof odd);
            return;
        }
    }
}

static void crc_zeros_table(uint32_t table[4][256], size_t bytes) {
    uint32_t op[32];
    crc_zeros_operator(op, bytes);
    for (uint32_t n = 0; n < 256; n++) {
        table[0][n] = gf2_times(op, n);
        table[1][n] = gf2_times(op, n << 8);
        table[2][n] = gf2_times(op, n << 16);
        table[3][n] = gf2_times(op, n << 24);
    }
}

__attribute__((constructor)) static void crc_tables_init(void) {
    crc_zeros_table(crc_long_zeros, CRC_LONG);
    crc_zeros_table(crc_short_zeros, CRC_SHORT);
}

static inline uint32_t crc_shift(uint32_t table[4][256], uint32_t crc) {
    return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^ table[3][crc >> 24];
}

__attribute__((target("sse4.2")))
static inline uint64_t crc_word(uint64_t crc, const unsigned char *p) {
    uint64_t word;
    memcpy(&word, p, 8);
    return _mm_crc32_u64(crc, word);
}

/// Three streams of `stride` bytes each from `*p`, folded into `crc`.
__attribute__((target("sse4.2")))
static uint64_t crc_three_streams(uint64_t crc, const unsigned char **p, size_t stride, uint32_t table[4][256]) {
    const unsigned char *next = *p;
    const unsigned char *end = next + stride;
    uint64_t crc1 = 0, crc2 = 0;
    do {
        crc = crc_word(crc, next);
        crc1 = crc_word(crc1, next + stride);
        crc2 = crc_word(crc2, next + 2 * stride);
        next += 8;
    } while (next < end);
    crc = crc_shift(table, (uint32_t)crc) ^ (uint32_t)crc1;
    crc = crc_shift(table, (uint32_t)crc) ^ (uint32_t)crc2;
    *p = next + 2 * stride;
    return crc;
}

__attribute__((target("sse4.2")))
uint32_t tandem_crc32c_hw(uint32_t seed, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint64_t crc = (uint32_t)~seed;
    while (count >= 3 * CRC_LONG) {
        crc = crc_three_streams(crc, &p, CRC_LONG, crc_long_zeros);
        count -= 3 * CRC_LONG;
    }
    while (count >= 3 * CRC_SHORT) {
        crc = crc_three_streams(crc, &p, CRC_SHORT, crc_short_zeros);
        count -= 3 * CRC_SHORT;
    }
    while (count >= 8) {
        crc = crc_word(crc, p);
        p += 8;
        count -= 8;
    }
    uint32_t crc32 = (uint32_t)crc;
    while (count--) crc32 = _mm_crc32_u8(crc32, *p++);
    return ~crc32;
}
#else
int tandem_crc32c_hw_available(void) { return 0; }
uint32_t tandem_crc32c_hw(uint32_t seed, const void *bytes, size_t count) {
    (void)bytes; (void)count; return seed;
}
#endif
