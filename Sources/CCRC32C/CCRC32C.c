// CCRC32C: CRC32C (Castagnoli) with the SSE4.2 crc32 instruction, for TandemCore's CRC32C.
// A module of its own so that TandemCore, which does no I/O and has no other dependency, can
// use the instruction: pure computation, no allocation, no system call, no feature macros
// (CShims.c alone sets _GNU_SOURCE; docs/architecture.md). The tables of the three-stream
// combination are built once, before main (a constructor).
#include "CCRC32C.h"

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
