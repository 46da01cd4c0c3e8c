// CShims: static inline wrappers for C function-like macros and errno, which Swift cannot
// import directly. Nothing else belongs here.
#ifndef TANDEM_CSHIMS_H
#define TANDEM_CSHIMS_H
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/ioctl.h>
#include <linux/fs.h>
#include <fcntl.h>

static inline int tandem_errno(void) { return errno; }
static inline void tandem_set_errno(int value) { errno = value; }

/// BLKGETSIZE64 and BLKSSZGET are function-like ioctl request macros.
static inline int tandem_blk_getsize64(int fd, unsigned long long *size) {
    return ioctl(fd, BLKGETSIZE64, size);
}
static inline int tandem_blk_sszget(int fd, int *sectorSize) {
    return ioctl(fd, BLKSSZGET, sectorSize);
}

/// The peer's credentials on a Unix socket (SO_PEERCRED).
static inline int tandem_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid) {
    struct ucred cred;
    socklen_t len = sizeof(cred);
    int rc = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len);
    if (rc == 0) { *pid = cred.pid; *uid = cred.uid; *gid = cred.gid; }
    return rc;
}
#endif
