/* CodeResources parsing (sx_seal_parse) on arbitrary bytes; when it parses, verify a tiny
 * fixed tree against it (rules compiled and matched, strict checks, symlink resolution). */
#include "util/common.h"
#include "codesign/seal.h"
#include "util/fs.h"
#include "util/report.h"

#include <unistd.h>

static char *tree;

static void remove_tree(void)
{
    if (tree)
        sx_rm_rf(tree);
    free(tree);
}

static const char *fixed_tree(void)
{
    if (tree)
        return tree;
    char tmpl[] = "/tmp/sx-fuzz-seal-XXXXXX";
    if (!mkdtemp(tmpl))
        abort();
    tree = strdup(tmpl);
    atexit(remove_tree);
    static const char *const files[] = {"a", "Resources/b", "Resources/en.lproj/c",
                                        "_CodeSignature/CodeResources", "MacOS/main",
                                        "Frameworks/F.framework/F"};
    for (size_t i = 0; i < SX_ARRAY_SIZE(files); i++) {
        char *p = sx_path_join(tree, files[i]);
        char *d = sx_path_dirname(p);
        if (!p || !d || sx_mkdir_p(d, 0755) < 0 || sx_write_file_atomic(p, "x", 1, 0644) < 0)
            abort();
        free(p);
        free(d);
    }
    char *l = sx_path_join(tree, "l");
    char *o = sx_path_join(tree, "Resources/out");
    if (!l || !o || symlink("a", l) < 0 || symlink("../../x", o) < 0)
        abort();
    free(l);
    free(o);
    return tree;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sx_seal *s = NULL;
    if (sx_seal_parse(data, size, "fuzz", &s) < 0)
        return 0;
    sx_seal_free(s);
    sx_seal_options o = {.bundle_path = fixed_tree(), .flat = true, .main_exe_rel = "MacOS/main",
                         .threads = 1};
    sx_report rep;
    sx_report_init(&rep);
    (void)sx_seal_verify(&o, data, size, true, NULL, NULL, &rep);
    sx_report_free(&rep);
    return 0;
}
