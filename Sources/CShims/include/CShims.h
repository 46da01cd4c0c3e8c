// CShims: wrappers for C function-like macros, errno and structures Swift cannot import
// cleanly. The header declares plain functions over plain types; the bodies live in
// CShims.c, compiled with _GNU_SOURCE, so that this module never redefines glibc types
// (fd_set) differently from Swift's Glibc module.
#ifndef TANDEM_CSHIMS_H
#define TANDEM_CSHIMS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void tandem_set_errno(int value);

/// BLKGETSIZE64 and BLKSSZGET are function-like ioctl request macros.
int tandem_blk_getsize64(int fd, unsigned long long *size);
/// The filesystem type (statfs f_type) of the file behind `fd`, or -1 with errno set.
long long tandem_fs_type(int fd);
int tandem_blk_sszget(int fd, int *sectorSize);

/// The peer's credentials on a Unix socket (SO_PEERCRED; struct ucred needs _GNU_SOURCE).
int tandem_peer_cred(int fd, pid_t *pid, uid_t *uid, gid_t *gid);

/// Flags glibc exposes only under _GNU_SOURCE, given their values by CShims.c.
extern const int tandem_O_DIRECT;
extern const int tandem_RWF_DSYNC;
extern const int tandem_FALLOC_FL_KEEP_SIZE;
extern const int tandem_FALLOC_FL_PUNCH_HOLE;
extern const int tandem_FALLOC_FL_ZERO_RANGE;

/// eventfd(2) with EFD_CLOEXEC.
int tandem_eventfd(void);

/// Sets the calling thread's nice value (Linux schedules threads, so setpriority of the
/// thread id touches this thread alone); 0 or -1 with errno.
int tandem_set_thread_nice(int nice);

/// Routes OpenSSL's allocations through a per-thread cache of small blocks (see CShims.c).
/// Must run before OpenSSL allocates anything; returns 0 (and changes nothing) otherwise.
int tandem_openssl_cache_small_blocks(void);
/// Small blocks this thread took from its cache, and allocated afresh, since it started.
void tandem_openssl_small_block_counts(unsigned long *reused, unsigned long *allocated);
#endif
