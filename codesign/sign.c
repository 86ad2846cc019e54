/* Signing one bundle: seal its resources, hash its components, build the CodeDirectory,
 * requirements and entitlement blobs, sign the CodeDirectory with CMS, and swap the new
 * _CodeSignature/ into place in one atomic step. */
#include "util/common.h"

#include <dirent.h>
#include <pthread.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bundle/bundle.h"
#include "codesign/cms.h"
#include "codesign/codedirectory.h"
#include "codesign/entitlements.h"
#include "codesign/identity.h"
#include "codesign/nested.h"
#include "codesign/requirement.h"
#include "codesign/seal.h"
#include "codesign/sign_internal.h"
#include "codesign/sigwrite.h"
#include "codesign/phase.h"
#include "sysext/codesign.h"
#include "util/fs.h"
#include "util/hex.h"

#define SX_ENTITLEMENTS_MAX (1u << 20)

/* An app may only be signed once every embedded extension carries its own signature: its
 * seal records their _CodeSignature files, so signing before them would seal stale state. */
static int check_embedded_signed(const sx_bundle *b)
{
    _sx_cleanup_free_ char *dir = sx_path_join(b->contents, "Library/SystemExtensions");
    if (!dir)
        return sx_err(SYSEXT_ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int r = 0;
    struct dirent *e;
    while (r == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        _sx_cleanup_free_ char *ext = sx_path_join(dir, e->d_name);
        _sx_cleanup_free_ char *sig = ext ? sx_sigdir_of(ext) : NULL;
        _sx_cleanup_free_ char *cd = sig ? sx_path_join(sig, SX_SIGFILE_CD) : NULL;
        if (!cd)
            r = sx_err(SYSEXT_ENOMEM, "out of memory");
        else if (!sx_path_exists(cd))
            r = sx_err(SYSEXT_EINVALID,
                       "%s: embedded system extension '%s' is not signed: sign it first, with "
                       "its own entitlements",
                       b->path, e->d_name);
    }
    closedir(d);
    return r;
}

/* SHA-256 (and any other type asked for) of a whole file, streamed: the main executable of a
 * non-Mach-O bundle is one page. */
static int hash_whole_file(const char *path, uint8_t type, uint8_t *out, uint64_t *size)
{
    const EVP_MD *md = type == SX_HASH_SHA1 ? EVP_sha1() : EVP_sha256();
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return sx_err_errno(sx_errno_code(errno), errno, "%s", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int r = ctx && EVP_DigestInit_ex(ctx, md, NULL) ? 0 : sx_err(SYSEXT_ENOMEM, "digest init");
    uint64_t total = 0;
    static _Thread_local uint8_t buf[1 << 16];
    while (r == 0) {
        ssize_t k = read(fd, buf, sizeof(buf));
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            r = sx_err_errno(SYSEXT_EIO, errno, "%s", path);
        else if (k == 0)
            break;
        else if (!EVP_DigestUpdate(ctx, buf, (size_t)k))
            r = sx_err(SYSEXT_ERROR, "digest update");
        else
            total += (uint64_t)k;
    }
    uint8_t full[EVP_MAX_MD_SIZE];
    unsigned n = 0;
    if (r == 0 && !EVP_DigestFinal_ex(ctx, full, &n))
        r = sx_err(SYSEXT_ERROR, "digest final");
    if (r == 0) {
        memcpy(out, full, sx_hash_size(type));
        *size = total;
    }
    EVP_MD_CTX_free(ctx);
    close(fd);
    return r;
}

/* CodeResources (megabytes for a large bundle) is written, its writeback started, on a thread
 * of its own while the CodeDirectory and the CMS signature are computed: the disk works while
 * the CPU signs. The thread then removes what is left of the last replaced signature (see
 * sx_sigwrite_recycle). The fsyncs wait until every component is written, so that one journal
 * commit covers them all (a commit per file, each queued behind the last, cost 2-5 ms). */
typedef struct cr_writer {
    const char *dir;
    const sx_buf *seal;
    bool over;          /* write over the recycled spare */
    const char *trash;  /* to remove afterwards, or NULL */
    pthread_t tid;
    bool running;
    int rc;
    char *msg;
} cr_writer;

static void cr_write(cr_writer *c)
{
    c->rc = sx_sigwrite_component(c->dir, SX_SIGFILE_RESOURCES, c->seal->data, c->seal->len,
                                  c->over);
    if (c->rc < 0 && !(c->msg = strdup(sx_errmsg())))
        c->rc = SYSEXT_ENOMEM;
    if (c->trash)
        (void)sx_rm_rf(c->trash);
}

static void *cr_write_main(void *arg)
{
    cr_write(arg);
    return NULL;
}

static void cr_write_start(cr_writer *c, const char *dir, const sx_buf *seal)
{
    c->dir = dir;
    c->seal = seal;
    c->running = pthread_create(&c->tid, NULL, cr_write_main, c) == 0;
    if (!c->running)
        cr_write(c);
}

/* Wait for the writer; its failure is reported unless one came first. */
static int cr_write_finish(cr_writer *c, int r)
{
    if (c->running)
        pthread_join(c->tid, NULL);
    c->running = false;
    if (c->rc < 0 && r == 0)
        r = sx_err(c->rc, "%s", c->msg ? c->msg : "out of memory");
    free(c->msg);
    c->msg = NULL;
    c->rc = 0;
    return r;
}

/* Load the entitlements file: keep the XML bytes as given (codesign does), convert a binary
 * plist to XML; the root must be a dictionary. */
static int load_entitlements(const char *path, sx_buf *xml_blob, sx_buf *der_blob)
{
    _sx_cleanup_free_ uint8_t *data = NULL;
    size_t len;
    plist_t dict = NULL;
    int r = sx_read_file(path, SX_ENTITLEMENTS_MAX, &data, &len);
    if (r < 0)
        return r;
    r = sx_plist_parse(data, len, path, &dict);
    if (r < 0)
        return r;
    if (plist_get_node_type(dict) != PLIST_DICT) {
        plist_free(dict);
        return sx_err(SYSEXT_EFORMAT, "%s: entitlements must be a dictionary", path);
    }
    if (len >= 8 && !memcmp(data, "bplist00", 8)) {
        char *xml = NULL;
        uint32_t xlen = 0;
        plist_to_xml(dict, &xml, &xlen);
        r = xml ? sx_ent_xml_blob((const uint8_t *)xml, xlen, xml_blob)
                : sx_err(SYSEXT_ENOMEM, "%s: cannot convert to XML", path);
        free(xml);
    } else {
        r = sx_ent_xml_blob(data, len, xml_blob);
    }
    if (r == 0)
        r = sx_ent_der_blob(dict, der_blob);
    plist_free(dict);
    return r < 0 ? sx_err_prefix(r, "%s", path) : 0;
}

static char *cache_path_for(const char *bundle, const char *cache_dir)
{
    char real[4096];
    if (!realpath(bundle, real))
        return NULL;
    uint8_t h[32];
    char hex[65];
    if (sx_hash(SX_HASH_SHA256, real, strlen(real), h) < 0)
        return NULL;
    sx_hex_encode(h, 16, hex);
    _sx_cleanup_free_ char *dir = NULL;
    if (cache_dir) {
        dir = strdup(cache_dir);
    } else {
        const char *xdg = secure_getenv("XDG_CACHE_HOME");
        const char *home = secure_getenv("HOME");
        if (xdg && *xdg)
            dir = sx_path_join(xdg, "sysext");
        else if (home && *home)
            dir = sx_path_join(home, ".cache/sysext");
        else
            dir = strdup("/tmp/sysext-cache");
    }
    if (!dir || sx_mkdir_p(dir, 0700) < 0)
        return NULL;
    char *p = NULL;
    if (asprintf(&p, "%s/seal-%s.cache", dir, hex) < 0)
        return NULL;
    return p;
}

/* The old signature is removed on a thread while the swap is made durable: unlinking a
 * CodeResources of megabytes frees its pages and blocks (about 2 ms for 2.6 MB here). */
typedef struct old_remover {
    char *path;
    pthread_t tid;
    bool running;
    int rc;
} old_remover;

static void *remove_main(void *arg)
{
    old_remover *o = arg;
    o->rc = sx_rm_rf(o->path);
    return NULL;
}

/* The identity is loaded (PKCS#12 decryption, OpenSSL's first use: 3 ms in a warm process,
 * 10-20 ms in a fresh one) on a thread of its own while the seal is computed: started once
 * the seal's cache checks are done, which need both cores, and beside the hashing. */
typedef struct id_loader {
    const char *path, *chain, *password;
    bool started;
    sx_identity *id;
    int rc;
    char *msg;
    pthread_t tid;
    bool running;
} id_loader;

static void id_load(id_loader *l)
{
    sx_cs_phase(NULL);
    l->rc = sx_identity_load(l->path, l->chain, l->password ? l->password : "", &l->id);
    if (l->rc < 0 && !(l->msg = strdup(sx_errmsg())))
        l->rc = SYSEXT_ENOMEM;
    sx_cs_phase("identity load (its thread)");
}

static void *id_load_main(void *arg)
{
    id_load(arg);
    return NULL;
}

static void id_load_start(id_loader *l)
{
    l->started = true;
    l->running = pthread_create(&l->tid, NULL, id_load_main, l) == 0;
    if (!l->running)
        id_load(l);
}

static void id_load_start_cb(void *arg)
{
    id_load_start(arg);
}

/* Wait for the load; its failure wins over `r` (a failure found meanwhile), as when the
 * identity was loaded first. Returns the code to go on with and moves the identity out. */
static int id_load_finish(id_loader *l, int r, sx_identity **out)
{
    if (l->running)
        pthread_join(l->tid, NULL);
    l->running = false;
    if (l->rc < 0) {
        r = sx_err(l->rc, "%s", l->msg ? l->msg : "identity: out of memory");
        free(l->msg);
        l->msg = NULL;
        l->rc = 0;
    }
    *out = l->id;
    l->id = NULL;
    return r;
}

int sx_sign_bundle(const char *path, const sysext_sign_options *o)
{
    sx_bundle *b = NULL;
    sx_identity *id = NULL;
    /* Every cleanup-scoped variable is declared here: a goto out must never skip one. */
    _sx_cleanup_free_ char *password = NULL, *tmpdir = NULL, *sigdir = NULL, *cache = NULL,
                           *trash = NULL;
    _sx_cleanup_free_ uint8_t *info = NULL;
    sx_seal_cleanup *seal_cleanup = NULL; /* the seal's memory, freed while we sign */
    id_loader idl = {0};
    cr_writer crw = {0};
    old_remover old = {0};
    bool recycled = false; /* tmpdir is the last replaced signature, written over */
    sx_buf seal = SX_BUF_INIT, ents = SX_BUF_INIT, ents_der = SX_BUF_INIT, reqs = SX_BUF_INIT,
           dr_text = SX_BUF_INIT, dr = SX_BUF_INIT, cd = SX_BUF_INIT, cms = SX_BUF_INIT;
    int r;

    if (!o->adhoc && !o->identity)
        return sx_err(SYSEXT_EINVAL, "an identity or --adhoc is required");
    sx_cs_phase(NULL);
    r = sx_bundle_open_any(path, &b);
    if (r < 0)
        goto out;
    if (!b->identifier) {
        r = sx_err(SYSEXT_EINVALID, "%s: CFBundleIdentifier is missing", b->info_path);
        goto out;
    }
    if (!b->exe_path) {
        r = sx_err(SYSEXT_EINVALID, "%s: CFBundleExecutable is missing", b->info_path);
        goto out;
    }
    if (b->kind == SX_BUNDLE_APP && (r = check_embedded_signed(b)) < 0)
        goto out;
    sx_cs_phase("open bundle");
    if (!o->adhoc) {
        if (o->password_file && (r = sx_read_password_file(o->password_file, &password)) < 0)
            goto out;
        idl.path = o->identity;
        idl.chain = o->chain;
        idl.password = password;
    }
    if (o->entitlements && (r = load_entitlements(o->entitlements, &ents, &ents_der)) < 0)
        goto out;

    /* The resource seal: everything in the bundle but the main executable, Info.plist handling
     * and _CodeSignature, per the default rules for this layout. */
    const char *exe_rel = b->exe_path + strlen(b->contents);
    while (*exe_rel == '/')
        exe_rel++;
    if (o->incremental && (!(cache = cache_path_for(path, o->cache_dir)) ||
                           !(trash = sx_seal_cache_sibling(cache, ".old")))) {
        r = sx_err(SYSEXT_EIO, "%s: cannot set up the incremental hash cache", path);
        goto out;
    }
    sx_cs_phase("entitlements, cache path");
    uint8_t h_res[32]; /* CodeResources' digest, from the seal build */
    sx_seal_options so = {
        .bundle_path = b->path,
        .flat = b->flat,
        .main_exe_rel = exe_rel,
        .nested = sx_nested_info_of,
        .cache_path = cache,
        .threads = o->threads,
        .defer_cleanup = &seal_cleanup,
        .checked = o->adhoc ? NULL : id_load_start_cb,
        .checked_arg = &idl,
        .digest_out = h_res,
    };
    r = sx_seal_build(&so, &seal);
    sx_cs_phase(NULL);
    if (r < 0) {
        if (!o->adhoc) { /* the identity's failure is still the one reported first */
            if (!idl.started)
                id_load_start(&idl);
            sx_identity *late = NULL;
            r = id_load_finish(&idl, r, &late);
            sx_identity_free(late);
        }
        goto out;
    }

    /* Write the new components into a fresh folder beside _CodeSignature (the seal is already
     * computed, so it never sees it), then swap it in. CodeResources goes first, on a thread,
     * and everything that does not need the identity is done before waiting for it. */
    sigdir = sx_path_join(b->contents, "_CodeSignature");
    if (!sigdir) {
        r = sx_err(SYSEXT_ENOMEM, "out of memory");
        goto out;
    }
    if ((r = sx_mkdtemp_beside(sigdir, &tmpdir)) < 0)
        goto out;
    recycled = trash && sx_sigwrite_recycle(trash, tmpdir);
    if (chmod(tmpdir, 0755) < 0) {
        r = sx_err_errno(SYSEXT_EIO, errno, "chmod %s", tmpdir);
        goto out;
    }
    crw.over = recycled;
    crw.trash = recycled ? NULL : trash; /* whatever is there instead: removed */
    cr_write_start(&crw, tmpdir, &seal);

    /* Special slots and the single code page, all SHA-256 (what codesign writes for new code
     * on platforms without a legacy floor, DriverKit included). */
    uint8_t h_info[32], h_reqs[32], h_ents[32], h_der[32], h_code[32];
    size_t info_len;
    uint64_t exe_size = 0;
    if ((r = sx_read_file(b->info_path, SX_INFO_PLIST_MAX, &info, &info_len)) < 0 ||
        (r = sx_hash(SX_HASH_SHA256, info, info_len, h_info)) < 0 ||
        (r = hash_whole_file(b->exe_path, SX_HASH_SHA256, h_code, &exe_size)) < 0)
        goto out;
    if (ents.len && ((r = sx_hash(SX_HASH_SHA256, ents.data, ents.len, h_ents)) < 0 ||
                     (r = sx_hash(SX_HASH_SHA256, ents_der.data, ents_der.len, h_der)) < 0))
        goto out;
    sx_cs_phase("digests");

    if (!o->adhoc) {
        if (!idl.started)
            id_load_start(&idl);
        r = id_load_finish(&idl, r, &id);
        sx_cs_phase("wait for the identity");
        if (r == 0 && !id->team_id)
            r = sx_err(SYSEXT_EINVALID, "%s: the signing certificate has no team ID (subject OU)",
                       o->identity);
    }
    if (r < 0)
        goto out;

    /* Requirements: the designated requirement for this identity; ad-hoc stores an empty set
     * and relies on the implicit cdhash requirement. */
    if (o->adhoc) {
        r = sx_reqset_build(NULL, 0, &reqs);
    } else {
        r = sx_req_designated_text(b->identifier, id->kind, id->leaf, id->team_id, NULL, &dr_text);
        if (r == 0)
            r = sx_req_compile((const char *)dr_text.data, &dr);
        if (r == 0)
            r = sx_reqset_build(dr.data, dr.len, &reqs);
    }
    if (r == 0)
        r = sx_hash(SX_HASH_SHA256, reqs.data, reqs.len, h_reqs);
    if (r < 0)
        goto out;
    sx_cd_params p = {
        .identifier = b->identifier,
        .team_id = o->adhoc ? NULL : id->team_id,
        .hash_type = SX_HASH_SHA256,
        .flags = o->adhoc ? SX_CS_ADHOC : 0,
        .page_size_log2 = 0,
        .code_limit = exe_size,
        .code_hashes = h_code,
        .n_code_slots = exe_size ? 1 : 0,
    };
    p.special[SX_SLOT_INFO] = h_info;
    p.special[SX_SLOT_REQUIREMENTS] = h_reqs;
    p.special[SX_SLOT_RESOURCES] = h_res;
    if (ents.len) {
        p.special[SX_SLOT_ENTITLEMENTS] = h_ents;
        p.special[SX_SLOT_ENTITLEMENTS_DER] = h_der;
    }
    if ((r = sx_cd_build(&p, &cd)) < 0)
        goto out;
    if (!o->adhoc) {
        uint8_t full[32];
        if ((r = sx_hash(SX_HASH_SHA256, cd.data, cd.len, full)) < 0)
            goto out;
        sx_cms_cd one = {SX_HASH_SHA256, full, sizeof(full)};
        if ((r = sx_cms_sign(id, cd.data, cd.len, &one, 1, o->signing_time, &cms)) < 0)
            goto out;
    }
    sx_cs_phase("requirements, CD, CMS");

    if ((r = sx_sigwrite_component(tmpdir, SX_SIGFILE_CD, cd.data, cd.len, recycled)) < 0 ||
        (r = sx_sigwrite_component(tmpdir, SX_SIGFILE_REQS, reqs.data, reqs.len, recycled)) <
            0 ||
        (r = sx_sigwrite_component(tmpdir, SX_SIGFILE_CMS, cms.data, cms.len, recycled)) < 0)
        goto out;
    if (ents.len &&
        ((r = sx_sigwrite_component(tmpdir, SX_SIGFILE_ENTS, ents.data, ents.len, recycled)) < 0 ||
         (r = sx_sigwrite_component(tmpdir, SX_SIGFILE_ENTS_DER, ents_der.data, ents_der.len,
                                 recycled)) < 0))
        goto out;
    if ((r = cr_write_finish(&crw, 0)) < 0)
        goto out;
    static const char *const components[] = {SX_SIGFILE_RESOURCES, SX_SIGFILE_CD,
                                             SX_SIGFILE_REQS,      SX_SIGFILE_CMS,
                                             SX_SIGFILE_ENTS,      SX_SIGFILE_ENTS_DER};
    if (recycled && (r = sx_sigwrite_prune(tmpdir, components, ents.len ? 6 : 4)) < 0)
        goto out;
    sx_cs_phase("write components");
    if ((r = sx_sigwrite_sync(tmpdir, SX_SIGFILE_RESOURCES)) < 0 ||
        (r = sx_sigwrite_sync(tmpdir, SX_SIGFILE_CD)) < 0 ||
        (r = sx_sigwrite_sync(tmpdir, SX_SIGFILE_REQS)) < 0 ||
        (r = sx_sigwrite_sync(tmpdir, SX_SIGFILE_CMS)) < 0)
        goto out;
    if (ents.len && ((r = sx_sigwrite_sync(tmpdir, SX_SIGFILE_ENTS)) < 0 ||
                     (r = sx_sigwrite_sync(tmpdir, SX_SIGFILE_ENTS_DER)) < 0))
        goto out;
    sx_cs_phase("sync components");
    bool had_old = false;
    if ((r = sx_fsync_dir(tmpdir)) < 0 || (r = sx_sigwrite_swap(tmpdir, sigdir, &had_old)) < 0)
        goto out;
    /* `tmpdir` now holds the old signature. Removing it costs about 2 ms for a CodeResources
     * of megabytes (its pages and blocks are freed): an incremental sign moves it out of the
     * bundle into its cache folder, for the next one to remove while it waits for the disk;
     * otherwise (or on another file system) it is removed beside the fsync below. */
    if (had_old && trash && rename(tmpdir, trash) == 0) {
        free(tmpdir);
    } else if (had_old) {
        old.path = tmpdir;
        old.running = pthread_create(&old.tid, NULL, remove_main, &old) == 0;
        if (!old.running)
            remove_main(&old);
    } else {
        free(tmpdir);
    }
    tmpdir = NULL;
    r = sx_fsync_dir(b->contents);
    if (old.running)
        pthread_join(old.tid, NULL);
    old.running = false;
    if (r == 0 && old.rc < 0)
        r = sx_err_prefix(old.rc, "removing the replaced signature");
    sx_cs_phase("swap + fsync");

out:
    r = cr_write_finish(&crw, r); /* before the folder it writes into can go */
    free(old.path);
    if (idl.running || idl.id || idl.msg) { /* left early: its failure is reported first */
        sx_identity *late = NULL;
        r = id_load_finish(&idl, r, &late);
        sx_identity_free(late);
    }
    if (password)
        OPENSSL_cleanse(password, strlen(password));
    sx_seal_cleanup_wait(seal_cleanup);
    sx_cs_phase("wait for seal cleanup");
    if (tmpdir)
        sx_rm_rf(tmpdir);
    sx_buf_free(&seal);
    sx_buf_free(&ents);
    sx_buf_free(&ents_der);
    sx_buf_free(&reqs);
    sx_buf_free(&dr_text);
    sx_buf_free(&dr);
    sx_buf_free(&cd);
    sx_buf_free(&cms);
    sx_identity_free(id);
    sx_bundle_free(b);
    return r;
}

int sysext_sign(const char *path, const sysext_sign_options *opts)
{
    SX_ASSERT_ARG(path);
    SX_ASSERT_ARG(opts);
    if (opts->version != SYSEXT_SIGN_OPTIONS_VERSION)
        return sx_err(SYSEXT_EINVAL, "sysext_sign: unsupported options version %u", opts->version);
    return sx_sign_bundle(path, opts);
}
