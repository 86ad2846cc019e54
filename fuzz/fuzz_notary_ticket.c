/* Ticket parser (codesign/ticket.c): structure, then the signature check against a fixed
 * notary certificate built once, then every accessor on the parsed ticket. */
#include "util/common.h"

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "codesign/ticket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static X509 *notary_cert(void)
{
    static X509 *cert;
    if (cert)
        return cert;
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (!k || !x)
        abort();
    X509_set_pubkey(x, k);
    X509_sign(x, k, EVP_sha256());
    EVP_PKEY_free(k);
    cert = x;
    return cert;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sx_ticket t;
    volatile uint8_t sink = 0;
    if (sx_ticket_parse(data, size, "fuzz ticket", &t) == 0) {
        sink ^= (uint8_t)strlen(t.team_id);
        for (size_t i = 0; i < t.n_bundle_ids; i++)
            sink ^= (uint8_t)strlen(t.bundle_ids[i]);
        for (size_t i = 0; i < t.n_entries; i++)
            sink ^= (uint8_t)sx_ticket_covers(&t, t.entries[i].hash_type, t.entries[i].cdhash);
        sink ^= t.sig[0] ^ t.sig[t.sig_len - 1];
    }
    sx_ticket_free(&t);
    if (sx_ticket_verify(data, size, "fuzz ticket", notary_cert(), &t) == 0)
        abort(); /* nobody can forge a signature by this fresh key */
    sx_ticket_free(&t);
    (void)sink;
    return 0;
}
