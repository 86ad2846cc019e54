/* A SHA-256 computed behind its writer (see trailing_digest.h). */
#include "util/common.h"
#include "codesign/trailing_digest.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdbool.h>

struct sx_trailing_digest {
    const uint8_t *base;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t published; /* under mu */
    bool done;        /* under mu: published is the whole length */
    pthread_t tid;
    bool ok;
    uint8_t digest[32];
};

static void *hash_main(void *arg)
{
    sx_trailing_digest *t = arg;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    size_t at = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->published == at && !t->done)
            pthread_cond_wait(&t->cv, &t->mu);
        size_t upto = t->published;
        bool last = t->done;
        pthread_mutex_unlock(&t->mu);
        if (ok && upto > at)
            ok = EVP_DigestUpdate(ctx, t->base + at, upto - at) == 1;
        at = upto;
        pthread_mutex_lock(&t->mu);
        if (last && at == t->published)
            break;
    }
    pthread_mutex_unlock(&t->mu);
    unsigned n = 0;
    t->ok = ok && EVP_DigestFinal_ex(ctx, t->digest, &n) == 1 && n == 32;
    EVP_MD_CTX_free(ctx);
    return NULL;
}

sx_trailing_digest *sx_trailing_digest_start(const uint8_t *base)
{
    sx_trailing_digest *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->base = base;
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    if (pthread_create(&t->tid, NULL, hash_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t);
        return NULL;
    }
    return t;
}

static void publish(sx_trailing_digest *t, size_t len, bool done)
{
    pthread_mutex_lock(&t->mu);
    if (len > t->published)
        t->published = len;
    t->done = t->done || done;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
}

void sx_trailing_digest_publish(sx_trailing_digest *t, size_t len)
{
    publish(t, len, false);
}

int sx_trailing_digest_finish(sx_trailing_digest *t, size_t len, uint8_t out[32])
{
    publish(t, len, true);
    pthread_join(t->tid, NULL);
    bool ok = t->ok;
    if (ok)
        memcpy(out, t->digest, 32);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
    return ok ? 0 : sx_err(SYSEXT_ERROR, "SHA-256 of the seal failed");
}
