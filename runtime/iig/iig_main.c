/* sysext-iig --def FILE.iig --header OUT.h --impl OUT.c [-I DIR]...
 * Exit 0 ok, 1 the .iig has an error (FILE:LINE:COL: error: ... on stderr), 2 usage or I/O. */
#include "iig.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int usage(FILE *f)
{
    fprintf(f, "usage: sysext-iig --def FILE.iig --header OUT.h --impl OUT.c [-I DIR]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *def = NULL, *header = NULL, *impl = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        bool takes = strcmp(a, "--def") == 0 || strcmp(a, "--header") == 0 || strcmp(a, "--impl") == 0 ||
                     strcmp(a, "-I") == 0;
        if (takes && i + 1 >= argc) {
            fprintf(stderr, "sysext-iig: %s needs an argument\n", a);
            return usage(stderr);
        }
        if (strcmp(a, "--def") == 0)
            def = argv[++i];
        else if (strcmp(a, "--header") == 0)
            header = argv[++i];
        else if (strcmp(a, "--impl") == 0)
            impl = argv[++i];
        else if (strcmp(a, "-I") == 0)
            i++; /* accepted for compatibility: includes are mapped, not read */
        else if (strncmp(a, "-I", 2) == 0)
            continue;
        else {
            fprintf(stderr, "sysext-iig: unknown argument '%s'\n", a);
            return usage(stderr);
        }
    }
    if (!def || !header || !impl)
        return usage(stderr);

    struct iig_src src;
    if (!iig_lex(&src, def)) {
        bool io = src.text == NULL;
        iig_src_free(&src);
        return io ? 2 : 1;
    }
    struct iig_unit unit;
    if (!iig_parse(&src, &unit)) {
        iig_unit_free(&unit);
        iig_src_free(&src);
        return 1;
    }
    int rc = 0;
    FILE *h = fopen(header, "w");
    FILE *c = h ? fopen(impl, "w") : NULL;
    if (!h || !c) {
        fprintf(stderr, "sysext-iig: cannot write %s: %s\n", h ? impl : header, strerror(errno));
        rc = 2;
    } else if (!iig_generate(&unit, def, header, h, c)) {
        fprintf(stderr, "sysext-iig: write error\n");
        rc = 2;
    }
    if (h && fclose(h) != 0)
        rc = 2;
    if (c && fclose(c) != 0)
        rc = 2;
    if (rc != 0) {
        remove(header);
        remove(impl);
    }
    iig_unit_free(&unit);
    iig_src_free(&src);
    return rc;
}
