/* freespace.h: the extensions of libfreespace.so beyond the standard allocation functions.
 *
 * libfreespace.so exports malloc, free, calloc, realloc, reallocarray, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc and malloc_usable_size with their usual
 * declarations (<stdlib.h>, <malloc.h>). This header adds statistics, cache control, and
 * starting and stopping an allocation trace at run time. None of these functions allocates.
 *
 * Link with -lfreespace, or look the symbols up with dlsym() when the library is preloaded.
 */
#ifndef FREESPACE_H
#define FREESPACE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A snapshot of the allocator's counters (struct FreespaceStats in crates/capi). */
struct freespace_stats {
    size_t span_bytes;          /* bytes of live spans (small objects in use or cached) */
    size_t spans;               /* live spans */
    size_t spans_created;       /* spans ever taken from the core */
    size_t spans_released;      /* spans ever given back to the core */
    size_t large_bytes;         /* bytes the core holds for the live objects it serves: above
                                   32 KiB, aligned beyond 4 KiB, or of a cold size class (its
                                   first 64 objects) */
    size_t large_objects;       /* live objects served by the core */
    size_t transfer_bytes;      /* free bytes in the central transfer caches */
    size_t thread_cache_bytes;  /* free bytes cached by the calling thread */
    uint64_t trace_records;     /* trace records made since the process started */
    uint64_t trace_bytes;       /* trace bytes written */
    uint64_t trace_write_errors;/* failed trace writes */
    int tracing;                /* 1 while a trace is being recorded */
};

/* Fills *out. Returns 0, or EINVAL when out is NULL. */
int freespace_stats(struct freespace_stats *out);

/* Sends the calling thread's cached free blocks back to the shared lists. */
void freespace_flush_thread_cache(void);

/* Flushes the calling thread's cache and returns every empty span to the system. */
void freespace_release_memory(void);

/* Starts appending a binary trace (docs/trace-format-binary.md) to path; "%p" in the path
 * becomes the process id. Returns 0, EINVAL for NULL, EBUSY when a trace is being recorded,
 * started or stopped (of several threads starting at once, exactly one gets 0), ENXIO for a
 * FIFO that has no reader (never waited for), or the errno of open(2). A FIFO with a reader
 * works; if the reader goes away, recording stops with one line on stderr and the program
 * goes on (no SIGPIPE). Likewise if the file cannot grow (a file size limit, or no space;
 * no SIGXFSZ). FREESPACE_TRACE=path in the environment does the same when the library
 * loads, except in a program that runs in secure-execution mode (setuid, setgid, file
 * capabilities: getauxval(AT_SECURE) != 0), which ignores it. */
int freespace_trace_start(const char *path);

/* Stops the trace: every thread's buffered records are written and the file is closed.
 * Returns 0, or EINVAL when no trace was being recorded (or it ended by itself).
 *
 * None of the functions of this library, malloc and free included, may be called from a
 * signal handler: see docs/capi.md, "Signal handlers". */
int freespace_trace_stop(void);

#ifdef __cplusplus
}
#endif

#endif /* FREESPACE_H */
