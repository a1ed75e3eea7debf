/* trace_env.c: allocates, then prints "at_secure=N tracing=N": whether the kernel runs this
 * program in secure-execution mode (getauxval(AT_SECURE)), and whether FREESPACE_TRACE started
 * a trace. Linked against libfreespace.so. .ci/capi runs it as it is, where the variable must
 * start a trace, and as a setgid copy, where the variable must be ignored. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/auxv.h>

#include "freespace.h"

int main(void) {
    for (int i = 0; i < 100; i++) free(malloc(16 + (size_t)i));
    struct freespace_stats s;
    if (freespace_stats(&s) != 0) return 1;
    printf("at_secure=%lu tracing=%d\n", getauxval(AT_SECURE), s.tracing);
    return 0;
}
