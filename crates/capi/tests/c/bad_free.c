/* bad_free.c: hands the allocator a pointer it does not own, in the way named by argv[1].
 * Every mode must abort with one line on stderr naming the call and the pointer; reaching the
 * end of main is a failure (exit 1). The pointer is printed on stdout first, so the caller can
 * check that the message names it. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every mode below is a bug on purpose. */
#pragma GCC diagnostic ignored "-Wpragmas"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#pragma GCC diagnostic ignored "-Wuse-after-free"

static void show(const void *p) {
    printf("%p\n", p);
    fflush(stdout);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    char on_stack[64];
    memset(on_stack, 0, sizeof on_stack);
    if (strcmp(mode, "stack") == 0) {
        show(on_stack);
        free(on_stack);
    } else if (strcmp(mode, "double") == 0) {
        char *p = malloc(32);
        show(p);
        free(p);
        free(p);
    } else if (strcmp(mode, "double-large") == 0) {
        char *p = malloc(1 << 20);
        show(p);
        free(p);
        free(p);
    } else if (strcmp(mode, "interior") == 0) {
        char *p = malloc(256);
        show(p + 16);
        free(p + 16);
    } else if (strcmp(mode, "realloc") == 0) {
        show(on_stack);
        void *q = realloc(on_stack, 100);
        (void)q;
    } else if (strcmp(mode, "realloc-freed") == 0) {
        char *p = malloc(48);
        show(p);
        free(p);
        void *q = realloc(p, 64);
        (void)q;
    } else if (strcmp(mode, "usable") == 0) {
        show(on_stack);
        printf("%zu\n", malloc_usable_size(on_stack));
    } else {
        fprintf(stderr, "usage: bad_free stack|double|double-large|interior|realloc|realloc-freed|usable\n");
        return 2;
    }
    return 1;
}
