#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include "CShims.h"

const int tandem_O_DIRECT = O_DIRECT;
const int tandem_RWF_DSYNC = RWF_DSYNC;
const int tandem_FALLOC_FL_KEEP_SIZE = FALLOC_FL_KEEP_SIZE;
const int tandem_FALLOC_FL_PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE;
const int tandem_FALLOC_FL_ZERO_RANGE = FALLOC_FL_ZERO_RANGE;

int tandem_errno(void) { return errno; }
void tandem_set_errno(int value) { errno = value; }

int tandem_blk_getsize64(int fd, unsigned long long *size) { return ioctl(fd, BLKGETSIZE64, size); }
int tandem_blk_sszget(int fd, int *sectorSize) { return ioctl(fd, BLKSSZGET, sectorSize); }

int tandem_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    if (rc == 0) { *pid = cred.pid; *uid = cred.uid; *gid = cred.gid; }
    return rc;
}

int tandem_eventfd(void) { return eventfd(0, EFD_CLOEXEC); }

#if defined(__x86_64__)
#include <cpuid.h>
#include <nmmintrin.h>
#include <string.h>

int tandem_crc32c_hw_available(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}

__attribute__((target("sse4.2")))
uint32_t tandem_crc32c_hw(uint32_t seed, const void *bytes, size_t count) {
    const unsigned char *p = bytes;
    uint64_t crc = (uint32_t)~seed;
    while (count >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        crc = _mm_crc32_u64(crc, word);
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
