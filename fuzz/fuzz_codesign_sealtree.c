/* The incremental seal's walk snapshot (seal_tree.c): a local file, parsed boundedly all the
 * same. The checksum is skipped so the body is reached; a parsed snapshot is searched. */
#include "util/common.h"
#include "codesign/seal_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    sx_seal_tree *t = NULL;
    if (sx_seal_tree_parse(copy, size, "fuzz", NULL, 64, 64, false, &t) == 0) {
        struct stat st;
        memset(&st, 0, sizeof(st));
        (void)sx_seal_tree_find(t, "", &st);
        (void)sx_seal_tree_find(t, "Resources", &st);
        sx_seal_tree_free(t);
    }
    return 0;
}
