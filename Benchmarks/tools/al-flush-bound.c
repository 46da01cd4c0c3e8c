// The physical bound of an activity log that makes each write wait for a flush (issue 13's
// 64 GiB benchmark; docs/benchmarks.md, *The activity log's cost*). fio's --fdatasync=N
// cannot model it: with an async engine the flush is queued beside the writes and gates
// none of them. Here QD threads each write random 4 KiB blocks (O_DIRECT) over a sparse
// data file; with a log, a write first joins a group and waits until a committer thread has
// written a 4 KiB record (O_DIRECT) to a log file and fdatasync'ed it (one commit in flight
// at a time, as Tandem's primary; a group holds every write waiting when it starts, at most
// N). The data write follows the commit. Both files on the same disk, as in pair.sh.
// Prints IOPS, the mean writes per commit and commit latency p50/p99.
// usage: cc -O2 -pthread -o al-flush-bound al-flush-bound.c
//        ./al-flush-bound DIR SECONDS QD N   (N = 0: no log; the data file is DIR/data.img,
//        64 GiB sparse; the log DIR/log.img, 1 MiB; both removed at exit)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BLOCK = 4096, LATS = 1 << 20 };
static const uint64_t sizeBytes = 64ULL << 30;
static int dataFd, logFd, groupMax, stop;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t joined = PTHREAD_COND_INITIALIZER, committed = PTHREAD_COND_INITIALIZER;
static uint64_t waiting, joinedTotal, durableTicket, commits, writes;
static uint64_t lat[LATS];

static uint64_t nowNs(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static void *committer(void *arg) {
    (void)arg;
    void *record;
    if (posix_memalign(&record, BLOCK, BLOCK)) abort();
    memset(record, 0x5a, BLOCK);
    uint64_t slot = 0;
    pthread_mutex_lock(&lock);
    while (!stop) {
        while (waiting == 0 && !stop) pthread_cond_wait(&joined, &lock);
        if (stop) break;
        uint64_t take = waiting < (uint64_t)groupMax ? waiting : (uint64_t)groupMax;
        waiting -= take;
        uint64_t ticket = durableTicket + take;  // writers joined in order: tickets are positions
        pthread_mutex_unlock(&lock);
        uint64_t start = nowNs();
        if (pwrite(logFd, record, BLOCK, (slot++ % 256) * BLOCK) != BLOCK || fdatasync(logFd) != 0) abort();
        uint64_t took = nowNs() - start;
        pthread_mutex_lock(&lock);
        if (commits < LATS) lat[commits] = took;
        commits++;
        durableTicket = ticket;
        pthread_cond_broadcast(&committed);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *writer(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1;
    void *buffer;
    if (posix_memalign(&buffer, BLOCK, BLOCK)) abort();
    memset(buffer, 0xa5, BLOCK);
    while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
        seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
        uint64_t offset = (seed % (sizeBytes / BLOCK)) * BLOCK;
        if (groupMax > 0) {
            pthread_mutex_lock(&lock);
            uint64_t ticket = ++joinedTotal;
            waiting++;
            pthread_cond_signal(&joined);
            while (durableTicket < ticket && !stop) pthread_cond_wait(&committed, &lock);
            pthread_mutex_unlock(&lock);
        }
        if (pwrite(dataFd, buffer, BLOCK, offset) != BLOCK) abort();
        __atomic_add_fetch(&writes, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s DIR SECONDS QD N\n", argv[0]); return 2; }
    int seconds = atoi(argv[2]), depth = atoi(argv[3]);
    groupMax = atoi(argv[4]);
    if (seconds < 1 || seconds > 600 || depth < 1 || depth > 256 || groupMax < 0 || groupMax > 256) return 2;
    char data[4096], logPath[4096];
    snprintf(data, sizeof data, "%s/data.img", argv[1]);
    snprintf(logPath, sizeof logPath, "%s/log.img", argv[1]);
    dataFd = open(data, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    logFd = open(logPath, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    if (dataFd < 0 || logFd < 0 || ftruncate(dataFd, sizeBytes) || posix_fallocate(logFd, 0, 1 << 20)) {
        perror("open");
        return 1;
    }
    fsync(logFd);
    pthread_t threads[257];
    pthread_create(&threads[depth], NULL, committer, NULL);
    for (int i = 0; i < depth; i++) pthread_create(&threads[i], NULL, writer, (void *)(uintptr_t)(i + 1));
    sleep(1);  // ramp
    uint64_t writes0 = __atomic_load_n(&writes, __ATOMIC_RELAXED);
    pthread_mutex_lock(&lock);
    uint64_t commits0 = commits;
    pthread_mutex_unlock(&lock);
    sleep(seconds);
    uint64_t done = __atomic_load_n(&writes, __ATOMIC_RELAXED) - writes0;
    pthread_mutex_lock(&lock);
    uint64_t made = commits - commits0, first = commits0, last = commits < LATS ? commits : LATS;
    stop = 1;
    pthread_cond_broadcast(&joined);
    pthread_cond_broadcast(&committed);
    pthread_mutex_unlock(&lock);
    for (int i = 0; i <= depth; i++) pthread_join(threads[i], NULL);
    unlink(data);
    unlink(logPath);
    double p50 = 0, p99 = 0;
    if (last > first) {
        qsort(lat + first, last - first, sizeof lat[0], compare);
        p50 = lat[first + (last - first) / 2] / 1000.0;
        p99 = lat[first + (last - first) * 99 / 100] / 1000.0;
    }
    printf("qd %d group_max %d: %.0f iops, %llu commits, %.1f writes/commit, commit p50 %.0f us p99 %.0f us\n",
           depth, groupMax, done / (double)seconds, (unsigned long long)made, made ? done / (double)made : 0.0, p50, p99);
    return 0;
}
