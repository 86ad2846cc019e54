/* sx_cms_verify on arbitrary bytes, against a fixed CodeDirectory and a small fixed trust
 * store (one development root). The bytes stand for the
 * contents of `_CodeSignature/CodeSignature` / the 0x10000 BlobWrapper payload.
 * Seeds: two CMS blobs made by sx_cms_sign (1 and 2 CDs), Apple's sstest CodeSignature, and
 * the CMS of the libexpat Developer ID sample (critical Apple extensions, RFC 3161 token). */
#include "util/common.h"
#include "codesign/cms.h"

#include <openssl/pem.h>
#include <openssl/x509.h>

/* The sstest sample's slot-0 CodeDirectory (146 bytes, SHA-1), so that the seed made from
 * the sample CodeSignature reaches the signature check and attribute parsing. */
static const uint8_t cd0[] = {
    0xfa, 0xde, 0x0c, 0x02, 0x00, 0x00, 0x00, 0x92, 0x00, 0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x7e, 0x00, 0x00, 0x00, 0x30, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,
    0x00, 0x00, 0x00, 0x21, 0x14, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x63, 0x6f, 0x6d, 0x2e, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x6d, 0x79, 0x61, 0x70,
    0x70, 0x00, 0x63, 0x0a, 0x08, 0x87, 0x30, 0x72, 0x06, 0x96, 0x16, 0xcd, 0xcc, 0x31, 0xf5, 0x5e,
    0x6d, 0x74, 0x23, 0x08, 0x6d, 0x78, 0xe5, 0xd9, 0x8c, 0x50, 0x02, 0xbd, 0x0f, 0x68, 0x74, 0xfa,
    0xc6, 0xc4, 0x77, 0xb2, 0x0c, 0xf3, 0x74, 0xb3, 0xe7, 0x86, 0x60, 0xaa, 0x92, 0x60, 0x7c, 0x8b,
    0x21, 0xe4, 0x91, 0x8a, 0xbd, 0x94, 0x4e, 0xfb, 0x16, 0xa2, 0x95, 0x23, 0x90, 0xdf, 0x1b, 0x85,
    0x62, 0x2a, 0x06, 0xde, 0xee, 0x0f, 0x7c, 0x5e, 0x9e, 0x60, 0x26, 0x03, 0x1e, 0x51, 0xf9, 0x2f,
    0xc0, 0x23,
};

/* The root of the development CA that signed the corpus seeds seed-sysext-*.der (made once
 * with `sysextctl ca init` + `identity create`, valid until 2036). */
static const char anchor_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIDpDCCAoygAwIBAgIQUcwLR9RqaFTRH68fpR/gdzANBgkqhkiG9w0BAQsFADBs\n"
    "MSMwIQYDVQQDDBpzeXNleHQgRGV2ZWxvcG1lbnQgUm9vdCBDQTEnMCUGA1UECwwe\n"
    "c3lzZXh0IENlcnRpZmljYXRpb24gQXV0aG9yaXR5MQ8wDQYDVQQKDAZzeXNleHQx\n"
    "CzAJBgNVBAYTAlVTMB4XDTI2MTEyNTAwMDgyMFoXDTM2MTEyMjAwMTMyMFowbDEj\n"
    "MCEGA1UEAwwac3lzZXh0IERldmVsb3BtZW50IFJvb3QgQ0ExJzAlBgNVBAsMHnN5\n"
    "c2V4dCBDZXJ0aWZpY2F0aW9uIEF1dGhvcml0eTEPMA0GA1UECgwGc3lzZXh0MQsw\n"
    "CQYDVQQGEwJVUzCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBANXFld7l\n"
    "OqBTJLn4gadJbaF6oKOBe2s0rxWMGK5r8Wl+boOdQJk+1T/o5tUbeXhAUhkX9yqA\n"
    "KHgi5eoJ9RaMO2ipO8NsTaOehQz3eUWwYat58miWwKkiwB4W2IWnQwC1RC90vpXt\n"
    "HJyEAOU51U6s7Xp5Kyrc+631uDt8XjxFVXACGXe7ZARrc7QmQIIo9CAKTtAhB27f\n"
    "/GCxAqfOhtlTBAB7NAW8qnpc61khmk7TklRm9CxIpuu06qjDMSJLSoVHx5jPd12D\n"
    "UzOm4lEpy/Rg3BuMP4Zd3RnCAf9OaQq+c9LzSF/GXJraZtdv+H9g9iL24N8yAl+M\n"
    "JFFBFMfYVQJVo2ECAwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAOBgNVHQ8BAf8E\n"
    "BAMCAQYwHQYDVR0OBBYEFNvM1YImTo3kDAWbfCCjN+m994cMMA0GCSqGSIb3DQEB\n"
    "CwUAA4IBAQB+2VDKio5LCTMSQnyFXAVvf5naiFv1ZU11uirUseEPYvGpsKi5gzYc\n"
    "Su9anJ9ejtJr62hJvOtH9PJTGQKMosP9h0IDPwn4rsIognmNMmk9a7hWKy1Kt4oF\n"
    "BfZdqvTdh/aWvSg/i7yTVrHd4IVzsmsxkwX3oc8hdb0Ca01eR8J1SRGoRgU5WVgp\n"
    "49xsp5BUuq1NNOSBCb/9NDNLiID+e7KVGGO+21jsfcBkDCT4TXVgCufesfSAF0aq\n"
    "sRKA5bRycWcNXLl7jz2W6Ch3oLUrKM2XKHpKAHHHeDHcfmp6Prpw0kmNQcZd7UUN\n"
    "doUB4yKswqQ+pLKPwmRNCFCjd5sNxv9q\n"
    "-----END CERTIFICATE-----\n";

static sx_trust *trust;

static void init(void)
{
    if (trust)
        return;
    BIO *bio = BIO_new_mem_buf(anchor_pem, (int)sizeof(anchor_pem) - 1);
    X509 *root = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    if (!root || sx_trust_new(&trust) < 0 || sx_trust_add_cert(trust, root) < 0)
        abort();
    X509_free(root);
    BIO_free(bio);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    sx_cms_info info;
    int r = sx_cms_verify(data, size, cd0, sizeof(cd0), trust, &info);
    if (r == 0) {
        /* Exercise what callers do with the result. */
        for (int i = 0; info.chain && i < sk_X509_num(info.chain); i++)
            free(sx_cert_subject_line(sk_X509_value(info.chain, i)));
        free(sx_cert_team_id(info.leaf));
        (void)sx_signer_kind_of(info.leaf, info.chain);
    }
    sx_cms_info_free(&info);
    sx_err_clear();
    return 0;
}
