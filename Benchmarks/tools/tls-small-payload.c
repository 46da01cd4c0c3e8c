// Whether the secondary should place 4 KiB payloads (decrypt each straight into its own
// buffer) rather than copy them out of the decoder (docs/benchmarks.md, *CPU per payload
// byte*, branch `cpu`). TLS 1.3 between two SSL objects over memory BIOs, as Tandem's
// secondary receives: the records are already in memory, SSL_read decrypts them; the sender
// stages 64 KiB of 64-byte prefixes and 4 KiB payloads per SSL_write, as TLSWireChannel does.
// Prints the receiver's CPU time per frame both ways:
//   A  SSL_read up to 64 KiB into a linear "decoder" buffer, then memcpy each payload into
//      a 4 KiB-aligned buffer of its own (today's path for payloads up to 8 KiB, minus CRC32C)
//   B  per frame, SSL_read the prefix, then SSL_read the payload straight into its buffer
// usage: cc -O2 -o tls-small-payload tls-small-payload.c -lssl -lcrypto
//        ./tls-small-payload CERTDIR   (scripts/make-certs.sh CERTDIR alpha: ca.crt, alpha.crt/.key)
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
enum { HDR = 64, PAY = 4096, FRAME = HDR + PAY, FRAMES = 40000 };
static double now(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void pump(BIO *from, BIO *to) { char b[65536]; int n; while ((n = BIO_read(from, b, sizeof b)) > 0) BIO_write(to, b, n); }
static void pair(SSL_CTX *sc, SSL_CTX *cc, SSL **s, SSL **c, BIO **s_in, BIO **c_in) {
    *s = SSL_new(sc); *c = SSL_new(cc);
    BIO *si = BIO_new(BIO_s_mem()), *so = BIO_new(BIO_s_mem()), *ci = BIO_new(BIO_s_mem()), *co = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(si, -1); BIO_set_mem_eof_return(ci, -1);
    SSL_set_bio(*s, si, so); SSL_set_bio(*c, ci, co);
    SSL_set_accept_state(*s); SSL_set_connect_state(*c);
    for (int i = 0; i < 20; i++) { SSL_do_handshake(*c); pump(co, si); SSL_do_handshake(*s); pump(so, ci); }
    if (!SSL_is_init_finished(*c) || !SSL_is_init_finished(*s)) { fprintf(stderr, "handshake failed\n"); ERR_print_errors_fp(stderr); exit(1); }
    *s_in = si; *c_in = ci;
}
static void readn(SSL *c, unsigned char *p, int n) { while (n > 0) { int r = SSL_read(c, p, n); if (r <= 0) { fprintf(stderr, "read failed\n"); exit(1); } p += r; n -= r; } }
int main(int argc, char **argv) {
    const char *d = argv[1]; char ca[512], crt[512], key[512];
    snprintf(ca, sizeof ca, "%s/ca.crt", d); snprintf(crt, sizeof crt, "%s/alpha.crt", d); snprintf(key, sizeof key, "%s/alpha.key", d);
    SSL_CTX *sc = SSL_CTX_new(TLS_server_method()), *cc = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION); SSL_CTX_set_min_proto_version(cc, TLS1_3_VERSION);
    SSL_CTX_use_certificate_chain_file(sc, crt); SSL_CTX_use_PrivateKey_file(sc, key, SSL_FILETYPE_PEM);
    SSL_CTX_set_num_tickets(sc, 0);
    unsigned char *plain = malloc((size_t)FRAME * FRAMES); for (size_t i = 0; i < (size_t)FRAME * FRAMES; i++) plain[i] = (unsigned char)(i * 7);
    unsigned char *decoder = malloc(65536 + FRAME), *dest; posix_memalign((void **)&dest, 4096, PAY * 64);
    unsigned char hdr[HDR];
    double cost[2] = {0, 0}; int rounds = 5;
    for (int round = 0; round < rounds; round++) for (int mode = 0; mode < 2; mode++) {
        SSL *s, *c; BIO *s_in, *c_in; pair(sc, cc, &s, &c, &s_in, &c_in);
        // The sender stages 64 KiB of frames per SSL_write, as TLSWireChannel does for small payloads.
        BIO *s_out = SSL_get_wbio(s);
        for (size_t off = 0; off < (size_t)FRAME * FRAMES; off += 65536) {
            size_t n = (size_t)FRAME * FRAMES - off; if (n > 65536) n = 65536;
            SSL_write(s, plain + off, (int)n); pump(s_out, c_in);
        }
        double t0 = now();
        if (mode == 0) {
            size_t have = 0, at = 0; int f = 0;
            while (f < FRAMES) {
                if (have - at < FRAME) { memmove(decoder, decoder + at, have - at); have -= at; at = 0;
                    int r = SSL_read(c, decoder + have, 65536); if (r <= 0) { fprintf(stderr, "A read failed\n"); return 1; } have += r; continue; }
                memcpy(dest + (size_t)(f % 64) * PAY, decoder + at + HDR, PAY); at += FRAME; f++;
            }
        } else {
            for (int f = 0; f < FRAMES; f++) { readn(c, hdr, HDR); readn(c, dest + (size_t)(f % 64) * PAY, PAY); }
        }
        cost[mode] += now() - t0;
        SSL_free(s); SSL_free(c);
    }
    double mib = (double)PAY * FRAMES * rounds / 1048576;
    printf("4 KiB payloads, %d frames x %d rounds: A (SSL_read 64 KiB + memcpy out) %.1f ns/frame, %.3f s/GiB; B (placed: 2 SSL_read per frame) %.1f ns/frame, %.3f s/GiB\n",
           FRAMES, rounds, cost[0] / FRAMES / rounds * 1e9, cost[0] / mib * 1024, cost[1] / FRAMES / rounds * 1e9, cost[1] / mib * 1024);
    return 0;
}
