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
