/* edge_cases.c: checks every export of libfreespace.so against the C standard and glibc's
 * documented behaviour, plus fork while another thread allocates, cross-thread frees, and
 * starting and stopping a trace. Linked against libfreespace.so, so every call below (and every
 * call libc makes) goes to freespace. Exits 0 when every check holds; otherwise prints the
 * failed check and exits 1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "freespace.h"

/* Impossible sizes are asked for on purpose, to check the failures. */
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

static int checks;
#define CHECK(cond)                                                                 \
    do {                                                                            \
        checks++;                                                                   \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            exit(1);                                                                \
        }                                                                           \
    } while (0)

static int aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 7);
}
static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 7)) return 0;
    return 1;
}

static void test_malloc_free(void) {
    free(NULL);
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b);
    free(a);
    free(b);
    for (size_t n = 1; n <= (1u << 22); n = n * 3 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        CHECK(aligned(p, 16));
        CHECK(malloc_usable_size(p) >= n);
        fill(p, n, (unsigned)n);
        CHECK(same(p, n, (unsigned)n));
        free(p);
    }
    CHECK(malloc_usable_size(NULL) == 0);
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
}

static void test_calloc(void) {
    for (size_t n = 1; n < 200000; n = n * 5 + 3) {
        unsigned char *p = malloc(n);
        memset(p, 0xab, n); /* dirty a block that calloc may reuse */
        free(p);
        unsigned char *z = calloc(n, 1);
        CHECK(z != NULL);
        for (size_t i = 0; i < n; i++) CHECK(z[i] == 0);
        free(z);
    }
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM);
    void *z = calloc(0, 16);
    CHECK(z != NULL);
    free(z);
}

static void test_realloc(void) {
    /* grow: small -> small -> large -> larger, contents kept at every step */
    size_t sizes[] = {24, 100, 3000, 40000, 1 << 20, 3 << 20};
    unsigned char *p = realloc(NULL, 10); /* realloc(NULL, n) is malloc(n) */
    CHECK(p != NULL);
    fill(p, 10, 5);
    size_t have = 10;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p = realloc(p, sizes[i]);
        CHECK(p != NULL);
        CHECK(same(p, have, 5));
        CHECK(malloc_usable_size(p) >= sizes[i]);
        fill(p, sizes[i], 5);
        have = sizes[i];
    }
    /* shrink: large -> small -> tiny, the prefix kept */
    size_t down[] = {70000, 5000, 33, 1};
    for (size_t i = 0; i < 4; i++) {
        p = realloc(p, down[i]);
        CHECK(p != NULL);
        CHECK(same(p, down[i], 5));
    }
    /* a failed realloc leaves the block alone */
    errno = 0;
    CHECK(realloc(p, SIZE_MAX - 4096) == NULL && errno == ENOMEM);
    CHECK(same(p, 1, 5));
    /* realloc(p, 0) frees p and returns NULL, as glibc does */
    CHECK(realloc(p, 0) == NULL);

    unsigned char *q = reallocarray(NULL, 10, 10);
    CHECK(q != NULL);
    fill(q, 100, 9);
    errno = 0;
    CHECK(reallocarray(q, SIZE_MAX / 4, 8) == NULL && errno == ENOMEM);
    CHECK(same(q, 100, 9));
    q = reallocarray(q, 1000, 10);
    CHECK(q != NULL && same(q, 100, 9));
    free(q);
}

static void test_alignment(void) {
    void *p = (void *)0x1;
    /* posix_memalign: EINVAL for a non-power of two or a non-multiple of sizeof(void *) */
    size_t bad[] = {0, 3, 4, 24, 48, 100};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        CHECK(posix_memalign(&p, bad[i], 64) == EINVAL);
        CHECK(p == (void *)0x1); /* untouched */
        CHECK(errno == 0);       /* the result is returned, not set in errno */
    }
    CHECK(posix_memalign(&p, 64, SIZE_MAX - 100000) == ENOMEM);
    for (size_t a = sizeof(void *); a <= 65536; a *= 2) {
        size_t sizes[] = {0, 1, a / 2 + 1, a, 3 * a + 5, 100000};
        for (size_t s = 0; s < 6; s++) {
            void *m;
            CHECK(posix_memalign(&m, a, sizes[s]) == 0);
            CHECK(m != NULL && aligned(m, a));
            CHECK(malloc_usable_size(m) >= sizes[s]);
            memset(m, 0x5a, sizes[s]);
            void *b = aligned_alloc(a, sizes[s]);
            CHECK(b != NULL && aligned(b, a) && b != m);
            void *c = memalign(a, sizes[s] + 1);
            CHECK(c != NULL && aligned(c, a));
            free(m);
            free(b);
            free(c);
        }
    }
    errno = 0;
    CHECK(aligned_alloc(3, 16) == NULL && errno == EINVAL);
    /* memalign rounds a non-power of two up, as glibc does */
    void *m = memalign(24, 100);
    CHECK(m != NULL && aligned(m, 32));
    free(m);
    errno = 0;
    CHECK(memalign(((size_t)1 << 63) + 1, 8) == NULL && errno == EINVAL);

    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void *v = valloc(10);
    CHECK(v != NULL && aligned(v, page) && malloc_usable_size(v) >= 10);
    void *pv = pvalloc(10);
    CHECK(pv != NULL && aligned(pv, page) && malloc_usable_size(pv) >= page);
    void *pv0 = pvalloc(0);
    CHECK(pv0 != NULL && aligned(pv0, page));
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM);
    free(v);
    free(pv);
    free(pv0);
}

/* ---- threads: a producer hands blocks to a consumer, which checks and frees them ---- */
#define RING 256
static void *ring[RING];
static size_t ring_len[RING];
static unsigned head, tail;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ring_cond = PTHREAD_COND_INITIALIZER;

static void *producer(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < 20000; i++) {
        size_t n = 1 + (i * 2654435761u) % 5000;
        unsigned char *p = malloc(n);
        CHECK(p != NULL);
        fill(p, n, i);
        pthread_mutex_lock(&ring_lock);
        while (head - tail == RING) pthread_cond_wait(&ring_cond, &ring_lock);
        ring[head % RING] = p;
        ring_len[head % RING] = n;
        head++;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < 20000; i++) {
        pthread_mutex_lock(&ring_lock);
        while (head == tail) pthread_cond_wait(&ring_cond, &ring_lock);
        unsigned char *p = ring[tail % RING];
        size_t n = ring_len[tail % RING];
        tail++;
        pthread_cond_broadcast(&ring_cond);
        pthread_mutex_unlock(&ring_lock);
        CHECK(same(p, n, i));
        free(p);
    }
    return NULL;
}

static void test_cross_thread(void) {
    pthread_t a, b;
    CHECK(pthread_create(&a, NULL, producer, NULL) == 0);
    CHECK(pthread_create(&b, NULL, consumer, NULL) == 0);
    CHECK(pthread_join(a, NULL) == 0);
    CHECK(pthread_join(b, NULL) == 0);
}

/* ---- fork while another thread allocates ---- */
static volatile int churn_stop;

static void *churn(void *arg) {
    (void)arg;
    void *keep[64] = {0};
    unsigned i = 0;
    while (!churn_stop) {
        unsigned k = i % 64;
        free(keep[k]);
        keep[k] = (i & 1) ? malloc(16 + i % 3000) : calloc(1, 40000 + i % 7);
        CHECK(keep[k] != NULL);
        i++;
    }
    for (int k = 0; k < 64; k++) free(keep[k]);
    return NULL;
}

static void test_fork_while_allocating(void) {
    pthread_t t[2];
    churn_stop = 0;
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, churn, NULL) == 0);
    for (int round = 0; round < 40; round++) {
        unsigned char *before = malloc(1000);
        fill(before, 1000, (unsigned)round);
        pid_t pid = fork();
        CHECK(pid >= 0);
        if (pid == 0) {
            alarm(20); /* a deadlocked child dies instead of hanging the test */
            if (!same(before, 1000, (unsigned)round)) _exit(3);
            free(before);
            void *p[500];
            for (int i = 0; i < 500; i++) {
                p[i] = malloc((size_t)(i * 37) % 70000 + 1);
                if (!p[i]) _exit(4);
                memset(p[i], i, (size_t)(i * 37) % 70000 + 1);
            }
            for (int i = 0; i < 500; i++) free(p[i]);
            /* a thread in the child works too */
            pthread_t c;
            churn_stop = 0;
            if (pthread_create(&c, NULL, churn, NULL) != 0) _exit(5);
            usleep(1000);
            churn_stop = 1;
            pthread_join(c, NULL);
            _exit(0);
        }
        int status = 0;
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            fprintf(stderr, "child of round %d: status %#x\n", round, status);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CHECK(same(before, 1000, (unsigned)round));
        free(before);
    }
    churn_stop = 1;
    for (int i = 0; i < 2; i++) CHECK(pthread_join(t[i], NULL) == 0);
}

static void *small_churn(void *arg) {
    (void)arg;
    for (int i = 0; i < 500; i++) free(malloc((size_t)i * 3 + 1));
    return NULL;
}

static void test_stats_and_trace(const char *dir) {
    struct freespace_stats s0, s1;
    CHECK(freespace_stats(NULL) == EINVAL);
    CHECK(freespace_stats(&s0) == 0);
    void *big = malloc(1 << 20);
    CHECK(freespace_stats(&s1) == 0);
    if (s1.large_objects != s0.large_objects + 1)
        fprintf(stderr, "large objects %zu -> %zu, bytes %zu -> %zu\n", s0.large_objects, s1.large_objects, s0.large_bytes, s1.large_bytes);
    CHECK(s1.large_objects == s0.large_objects + 1); /* this malloc really is freespace's */
    CHECK(s1.large_bytes >= s0.large_bytes + (1 << 20));
    free(big);
    freespace_flush_thread_cache();
    CHECK(freespace_stats(&s1) == 0 && s1.thread_cache_bytes == 0);
    freespace_release_memory();

    char path[4096];
    snprintf(path, sizeof path, "%s/edge.%%p.fstrace", dir);
    int was_tracing = s1.tracing;
    if (!was_tracing) {
        CHECK(freespace_trace_stop() == EINVAL);
        CHECK(freespace_trace_start(NULL) == EINVAL);
        CHECK(freespace_trace_start("/nonexistent-dir/x/y") == ENOENT);
        CHECK(freespace_trace_start(path) == 0);
        CHECK(freespace_trace_start(path) == EBUSY);
        for (int i = 0; i < 5000; i++) free(malloc((size_t)i + 1));
        void *r = malloc(10);
        r = realloc(r, 100000);
        free(r);
        /* Threads that exit flush their trace buffers: 4 x 1000 records, fewer than a buffer
         * holds, so only the exit flush can have written them. */
        struct freespace_stats before, after;
        CHECK(freespace_stats(&before) == 0);
        pthread_t t[4];
        for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, small_churn, NULL) == 0);
        for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(freespace_stats(&after) == 0);
        /* (thread creation and exit add a few records of their own: the DTV, TLS destructors) */
        CHECK(after.trace_records - before.trace_records >= 4000);
        CHECK(after.trace_records - before.trace_records < 4100);
        CHECK(after.trace_bytes - before.trace_bytes >= 4 * (24 + 1000 * 40));
        CHECK(freespace_stats(&s1) == 0 && s1.tracing == 1);
        CHECK(s1.trace_records >= 10003);
        CHECK(freespace_trace_stop() == 0);
        CHECK(freespace_stats(&s1) == 0 && s1.tracing == 0 && s1.trace_write_errors == 0);
        char real[4096];
        snprintf(real, sizeof real, "%s/edge.%d.fstrace", dir, (int)getpid());
        struct stat st;
        CHECK(stat(real, &st) == 0);
        CHECK(st.st_size >= 24 + 10003 * 40);
        CHECK(st.st_size == (off_t)s1.trace_bytes);
        /* Walk the chunks: every one starts with the magic, and together they hold exactly
         * the records the library counted. */
        FILE *f = fopen(real, "rb");
        CHECK(f != NULL);
        uint64_t records = 0;
        unsigned char header[24];
        while (fread(header, 1, 24, f) == 24) {
            CHECK(memcmp(header, "FSTRACE\x01", 8) == 0);
            uint32_t pid, count, rsize;
            memcpy(&pid, header + 8, 4);
            memcpy(&count, header + 12, 4);
            memcpy(&rsize, header + 16, 4);
            CHECK(pid == (uint32_t)getpid() && rsize == 40);
            CHECK(fseek(f, (long)count * 40, SEEK_CUR) == 0);
            records += count;
        }
        CHECK(ftell(f) == (long)st.st_size);
        fclose(f);
        CHECK(records == s1.trace_records);
    }
}

/* A program that closes the trace's descriptor and reuses its number must never find trace
 * records in its own file: the recorder checks the file's identity before every write. */
static void test_trace_descriptor_taken_over(const char *dir) {
    struct freespace_stats s;
    CHECK(freespace_stats(&s) == 0);
    if (s.tracing) return; /* a trace from the environment is not ours to disturb */
    char path[4096], other[4096], link[64], target[4096];
    snprintf(path, sizeof path, "%s/taken.fstrace", dir);
    snprintf(other, sizeof other, "%s/program-file.txt", dir);
    CHECK(freespace_trace_start(path) == 0);
    int trace_fd = -1;
    for (int fd = 3; fd < 4096 && trace_fd < 0; fd++) {
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = 0;
            if (strcmp(target, path) == 0) trace_fd = fd;
        }
    }
    CHECK(trace_fd >= 3);
    int mine = open(other, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(mine >= 0);
    CHECK(dup2(mine, trace_fd) == trace_fd); /* the program's file now has the trace's number */
    close(mine);
    for (int i = 0; i < 5000; i++) free(malloc((size_t)i + 1)); /* fills and flushes a buffer */
    CHECK(freespace_stats(&s) == 0);
    CHECK(s.tracing == 0);
    CHECK(s.trace_write_errors >= 1);
    struct stat st;
    CHECK(stat(other, &st) == 0 && st.st_size == 0);
    close(trace_fd);
    CHECK(freespace_trace_stop() == EINVAL);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    test_malloc_free();
    test_calloc();
    test_realloc();
    test_alignment();
    test_cross_thread();
    test_fork_while_allocating();
    test_stats_and_trace(dir);
    test_trace_descriptor_taken_over(dir);
    printf("edge_cases: %d checks passed\n", checks);
    return 0;
}
