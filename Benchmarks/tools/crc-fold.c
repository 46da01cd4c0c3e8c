// What the primary's CRC32C pass over a resync chunk costs, and whether folding it into the
// encryption's pass would save it (docs/benchmarks.md, *Resync against the hardware's
// limits*, 2026-12-07 branch `resync`). The sender today checksums a whole 1 MiB chunk
// (WirePayload.prepare: the chunk was just read with O_DIRECT, so from memory), then TLS
// encrypts it in 16 KiB records. Per 1 MiB chunk of a 256 MiB buffer (larger than the L3, so
// each chunk comes from memory as a freshly read one does), AES-256-GCM through EVP as
// OpenSSL's TLS 1.3 record layer uses it, each mode's CPU time per GiB:
//   separate        CRC32C of the chunk, then encrypt its 16 KiB records (today)
//   crc-then-enc    per record: CRC32C of the record, then encrypt it (the CRC folded in
//                   before: it still fetches the record from memory)
//   enc-then-crc    per record: encrypt, then CRC32C of the record from the cache (the CRC
//                   sent after the payload: a wire change)
//   enc-only        no CRC32C (what dropping it would leave)
// The modes alternate ROUNDS times; the median of each is printed.
// usage: cc -O2 -I Sources/CShims/include -o crc-fold Benchmarks/tools/crc-fold.c Sources/CShims/CShims.c -lcrypto
//        ./crc-fold [ROUNDS]   (from the repository root)
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "CShims.h"

enum { TOTAL = 256 << 20, CHUNK = 1 << 20, RECORD = 16 << 10, MODES = 4 };
static const char *names[MODES] = {"separate", "crc-then-enc", "enc-then-crc", "enc-only"};

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void encrypt_record(EVP_CIPHER_CTX *c, const unsigned char *in, unsigned char *out, unsigned char *iv) {
    unsigned char tag[16];
    int n;
    iv[11]++;  // a fresh nonce per record, as TLS 1.3 derives one from the sequence number
    EVP_EncryptInit_ex(c, NULL, NULL, NULL, iv);
    EVP_EncryptUpdate(c, out, &n, in, RECORD);
    EVP_EncryptFinal_ex(c, out + n, &n);
    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16, tag);
}

static double run(int mode, EVP_CIPHER_CTX *c, const unsigned char *buffer, unsigned char *out, uint32_t *sink) {
    unsigned char iv[12] = {0};
    double start = cpu_now();
    for (size_t offset = 0; offset < TOTAL; offset += CHUNK) {
        const unsigned char *chunk = buffer + offset;
        uint32_t crc = 0;
        if (mode == 0) crc = tandem_crc32c_hw(0, chunk, CHUNK);
        for (size_t at = 0; at < CHUNK; at += RECORD) {
            if (mode == 1) crc = tandem_crc32c_hw(crc, chunk + at, RECORD);
            encrypt_record(c, chunk + at, out, iv);
            if (mode == 2) crc = tandem_crc32c_hw(crc, chunk + at, RECORD);
        }
        *sink ^= crc;
    }
    return (cpu_now() - start) / ((double)TOTAL / (1 << 30));
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 7;
    if (rounds < 1 || rounds > 1000) { fprintf(stderr, "ROUNDS: 1 to 1000\n"); return 2; }
    unsigned char *buffer = aligned_alloc(1 << 21, TOTAL);
    unsigned char *out = aligned_alloc(64, RECORD + 64);
    double *seconds = calloc((size_t)rounds * MODES, sizeof *seconds);
    if (!buffer || !out || !seconds) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < TOTAL; i++) buffer[i] = (unsigned char)(i * 2654435761u >> 13);
    unsigned char key[32] = {1}, iv[12] = {0};
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, iv);
    uint32_t sink = 0;
    for (int r = 0; r < rounds; r++)
        for (int m = 0; m < MODES; m++) seconds[m * rounds + r] = run(m, c, buffer, out, &sink);
    for (int m = 0; m < MODES; m++) {
        qsort(seconds + m * rounds, rounds, sizeof *seconds, by_value);
        printf("%-13s median %.3f CPU s/GiB (min %.3f, max %.3f, %d rounds)\n", names[m],
               seconds[m * rounds + rounds / 2], seconds[m * rounds], seconds[m * rounds + rounds - 1], rounds);
    }
    EVP_CIPHER_CTX_free(c);
    return sink == 0x5a5a5a5a;  // keeps the checksums from being optimised away
}
