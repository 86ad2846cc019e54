/* sysext-iig's lexer, parser and generator on arbitrary text: errors are reported, never a
 * crash; whatever parses is generated (to /dev/null). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *sink;
    if (!sink && !(sink = fopen("/dev/null", "w")))
        abort();
    struct iig_src src;
    memset(&src, 0, sizeof(src));
    src.path = "fuzz.iig";
    src.text = malloc(size + 1);
    if (!src.text)
        return 0;
    memcpy(src.text, data, size);
    src.text[size] = 0;
    src.len = size;
    if (iig_lex_buffer(&src)) {
        struct iig_unit unit;
        if (iig_parse(&src, &unit))
            iig_generate(&unit, "fuzz.iig", "fuzz.h", sink, sink);
        iig_unit_free(&unit);
    }
    iig_src_free(&src);
    return 0;
}
