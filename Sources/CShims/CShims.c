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

