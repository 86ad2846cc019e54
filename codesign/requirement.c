/* Code requirements (reference 3): compiler (text -> 0xfade0c00 blob), decompiler with
 * codesign's printing rules (3.9), requirement sets, designated-requirement templates (3.6)
 * and evaluation (3.10). Blobs are hostile: every read is bounded, recursion is capped. */
#include "util/common.h"
#include "codesign/requirement.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>
#include <plist/plist.h>

#include "codesign/codedirectory.h"
#include "codesign/superblob.h"
#include "util/hex.h"
#include "util/reader.h"

#define REQ_MAX_DEPTH 256    /* expression tree depth in a blob (and/or chains count) */
#define REQ_MAX_PARENS 64    /* nesting of parentheses and '!' in requirement text */
#define REQ_MAX_TEXT (64u * 1024)
#define REQ_MAX_DATA 4096u /* longest string/hash/OID operand accepted anywhere */

enum {
    OP_FALSE,
    OP_TRUE,
    OP_IDENT,
    OP_APPLE_ANCHOR,
    OP_ANCHOR_HASH,
    OP_INFO_KEY_VALUE,
    OP_AND,
    OP_OR,
    OP_CDHASH,
    OP_NOT,
    OP_INFO_KEY_FIELD,
    OP_CERT_FIELD,
    OP_TRUSTED_CERT,
    OP_TRUSTED_CERTS,
    OP_CERT_GENERIC,
    OP_APPLE_GENERIC_ANCHOR,
    OP_ENTITLEMENT_FIELD,
    OP_CERT_POLICY,
    OP_NAMED_ANCHOR,
    OP_NAMED_CODE,
    OP_PLATFORM,
    OP_NOTARIZED,
    OP_CERT_FIELD_DATE,
    OP_LEGACY_DEVID,
};
#define OP_FLAG_GENERIC_FALSE 0x80000000u
#define OP_FLAG_GENERIC_SKIP 0x40000000u
#define OP_FLAG_MASK 0xff000000u

enum {
    M_EXISTS,
    M_EQUAL,
    M_CONTAINS,
    M_BEGINS,
    M_ENDS,
    M_LT,
    M_GT,
    M_LE,
    M_GE,
    M_ON,
    M_BEFORE,
    M_AFTER,
    M_ON_OR_BEFORE,
    M_ON_OR_AFTER,
    M_ABSENT,
};

enum { SL_PRIMARY, SL_AND, SL_OR, SL_TOP }; /* codesign's Dumper syntax levels */

static const char *const keywords[] = {
    "host",    "guest",    "designated",  "library", "plugin",    "or",
    "and",     "always",   "true",        "never",   "false",     "identifier",
    "cdhash",  "platform", "notarized",   "legacy",  "anchor",    "apple",
    "generic", "trusted",  "certificate", "cert",    "info",      "entitlement",
    "exists",  "absent",   "leaf",        "root",    "timestamp", NULL,
};

static bool is_keyword(const char *s, size_t n)
{
    for (const char *const *k = keywords; *k; k++)
        if (strlen(*k) == n && memcmp(*k, s, n) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------------ blob reading */

static int rd_data(sx_reader *r, const uint8_t **p, size_t *n)
{
    uint32_t len;
    int e = sx_rd_u32be(r, &len);
    if (e < 0)
        return e;
    size_t padded = ((size_t)len + 3) & ~(size_t)3;
    if (len > sx_reader_left(r) || padded > sx_reader_left(r))
        return sx_err(SYSEXT_EFORMAT, "%s: data of %u bytes at offset %zu runs past the end",
                      r->what, len, sx_reader_offset(r) - 4);
    sx_rd_bytes(r, len, p);
    sx_rd_skip(r, padded - len);
    *n = len;
    return 0;
}

/* Open a 0xfade0c00 blob: window over the expression program. */
static int req_open(const uint8_t *blob, size_t len, sx_reader *expr)
{
    sx_reader r;
    uint32_t magic, length, kind;
    int e;
    sx_reader_init(&r, blob, len, "requirement");
    if ((e = sx_rd_u32be(&r, &magic)) < 0 || (e = sx_rd_u32be(&r, &length)) < 0)
        return e;
    if (magic != SX_CSMAGIC_REQUIREMENT)
        return sx_err(SYSEXT_EFORMAT, "requirement: magic 0x%08x at offset 0, expected 0x%08x",
                      magic, SX_CSMAGIC_REQUIREMENT);
    if (length < 12 || length > len)
        return sx_err(SYSEXT_EFORMAT,
                      "requirement: length %u at offset 4 does not fit the %zu "
                      "bytes given",
                      length, len);
    r.len = length;
    if ((e = sx_rd_u32be(&r, &kind)) < 0)
        return e;
    if (kind != 1)
        return sx_err(SYSEXT_EUNSUPPORTED,
                      "requirement: kind %u at offset 8 is not the expression "
                      "form (1)",
                      kind);
    return sx_rd_window(&r, 12, length - 12, expr, "requirement");
}

/* ------------------------------------------------------------------ printing */

enum { PM_SIMPLE, PM_PRINTABLE, PM_BINARY };

static int print_data(sx_buf *o, const uint8_t *d, size_t n, bool dot_ok)
{
    int mode = PM_SIMPLE;
    for (size_t i = 0; i < n; i++) {
        if (isalnum(d[i]) || (d[i] == '.' && dot_ok))
            continue;
        if ((isgraph(d[i]) || isspace(d[i])) && d[i] < 0x80) { /* codesign: quoted */
            mode = PM_PRINTABLE;
        } else {
            mode = PM_BINARY;
            break;
        }
    }
    if (mode == PM_SIMPLE && (n == 0 || isdigit(d[0]) || is_keyword((const char *)d, n)))
        mode = PM_PRINTABLE;
    int e = 0;
    switch (mode) {
    case PM_SIMPLE:
        return sx_buf_append(o, d, n);
    case PM_PRINTABLE:
        e = sx_buf_putc(o, '"');
        for (size_t i = 0; i < n && e >= 0; i++) {
            if (d[i] == '"' || d[i] == '\\')
                e = sx_buf_putc(o, '\\');
            if (e >= 0)
                e = sx_buf_putc(o, (char)d[i]);
        }
        return e < 0 ? e : sx_buf_putc(o, '"');
    default:
        e = sx_buf_puts(o, "0x");
        for (size_t i = 0; i < n && e >= 0; i++)
            e = sx_buf_printf(o, "%02x", d[i]);
        return e;
    }
}

static int print_hash(sx_buf *o, const uint8_t *d, size_t n)
{
    int e = sx_buf_puts(o, "H\"");
    for (size_t i = 0; i < n && e >= 0; i++)
        e = sx_buf_printf(o, "%02x", d[i]);
    return e < 0 ? e : sx_buf_putc(o, '"');
}

static int print_oid(sx_buf *o, const uint8_t *d, size_t n)
{
    uint64_t v = 0;
    bool first = true;
    int e = 0;
    if (n == 0 || (d[n - 1] & 0x80))
        return sx_err(SYSEXT_EFORMAT, "requirement: malformed OID of %zu bytes", n);
    for (size_t i = 0; i < n && e >= 0; i++) {
        if (v > (UINT64_MAX >> 7))
            return sx_err(SYSEXT_EFORMAT, "requirement: OID arc too large");
        v = v << 7 | (d[i] & 0x7f);
        if (d[i] & 0x80)
            continue;
        if (first) {
            unsigned a = v < 40 ? 0 : v < 80 ? 1 : 2;
            e = sx_buf_printf(o, "%u.%llu", a, (unsigned long long)(v - 40u * a));
            first = false;
        } else {
            e = sx_buf_printf(o, ".%llu", (unsigned long long)v);
        }
        v = 0;
    }
    return e;
}

static int print_slot(sx_reader *r, sx_buf *o)
{
    uint32_t u;
    int e = sx_rd_u32be(r, &u);
    if (e < 0)
        return e;
    int32_t s = (int32_t)u;
    if (s == -1)
        return sx_buf_puts(o, " root");
    if (s == 0)
        return sx_buf_puts(o, " leaf");
    return sx_buf_printf(o, " %d", s);
}

static int print_match(sx_reader *r, sx_buf *o)
{
    uint32_t m;
    const uint8_t *d;
    size_t n;
    int e = sx_rd_u32be(r, &m);
    if (e < 0)
        return e;
    if (m == M_EXISTS)
        return sx_buf_puts(o, " /* exists */");
    if (m == M_ABSENT)
        return sx_buf_puts(o, " absent ");
    if (m >= M_ON && m <= M_ON_OR_AFTER) {
        uint64_t t;
        static const char *const ops[] = {"=", "<", ">", "<=", ">="};
        if ((e = sx_rd_u64be(r, &t)) < 0)
            return e;
        return sx_buf_printf(o, " %s <%lld>", ops[m - M_ON], (long long)t);
    }
    if (m > M_ABSENT)
        return sx_err(SYSEXT_EFORMAT, "requirement: match operation %u at offset %zu is unknown", m,
                      sx_reader_offset(r) - 4);
    if ((e = rd_data(r, &d, &n)) < 0)
        return e;
    switch (m) {
    case M_EQUAL:
        e = sx_buf_puts(o, " = ");
        return e < 0 ? e : print_data(o, d, n, false);
    case M_CONTAINS:
        e = sx_buf_puts(o, " ~ ");
        return e < 0 ? e : print_data(o, d, n, false);
    case M_BEGINS:
        e = sx_buf_puts(o, " = ");
        e = e < 0 ? e : print_data(o, d, n, false);
        return e < 0 ? e : sx_buf_putc(o, '*');
    case M_ENDS:
        e = sx_buf_puts(o, " = *");
        return e < 0 ? e : print_data(o, d, n, false);
    default: {
        static const char *const ops[] = {" < ", " > ", " <= ", " >= "};
        e = sx_buf_puts(o, ops[m - M_LT]);
        return e < 0 ? e : print_data(o, d, n, false);
    }
    }
}

static int print_expr(sx_reader *r, sx_buf *o, int level, unsigned depth)
{
    uint32_t op;
    const uint8_t *d;
    size_t n;
    int e;
    if (depth > REQ_MAX_DEPTH)
        return sx_err(SYSEXT_EFORMAT, "requirement: expression at offset %zu nested deeper than %d",
                      sx_reader_offset(r), REQ_MAX_DEPTH);
    size_t at = sx_reader_offset(r);
    if ((e = sx_rd_u32be(r, &op)) < 0)
        return e;
    switch (op) {
    case OP_FALSE:
        return sx_buf_puts(o, "never");
    case OP_TRUE:
        return sx_buf_puts(o, "always");
    case OP_IDENT:
        if ((e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_puts(o, "identifier ")) < 0)
            return e;
        return print_data(o, d, n, false);
    case OP_APPLE_ANCHOR:
        return sx_buf_puts(o, "anchor apple");
    case OP_APPLE_GENERIC_ANCHOR:
        return sx_buf_puts(o, "anchor apple generic");
    case OP_ANCHOR_HASH:
        if ((e = sx_buf_puts(o, "certificate")) < 0 || (e = print_slot(r, o)) < 0 ||
            (e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_puts(o, " = ")) < 0)
            return e;
        return print_hash(o, d, n);
    case OP_INFO_KEY_VALUE:
        if ((e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_puts(o, "info[")) < 0 ||
            (e = print_data(o, d, n, true)) < 0 || (e = sx_buf_puts(o, "] = ")) < 0 ||
            (e = rd_data(r, &d, &n)) < 0)
            return e;
        return print_data(o, d, n, false);
    case OP_AND:
    case OP_OR: {
        int mine = op == OP_AND ? SL_AND : SL_OR;
        bool paren = level < mine;
        if ((paren && (e = sx_buf_putc(o, '(')) < 0) ||
            (e = print_expr(r, o, mine, depth + 1)) < 0 ||
            (e = sx_buf_puts(o, op == OP_AND ? " and " : " or ")) < 0 ||
            (e = print_expr(r, o, mine, depth + 1)) < 0)
            return e;
        return paren ? sx_buf_putc(o, ')') : 0;
    }
    case OP_NOT:
        if ((e = sx_buf_puts(o, "! ")) < 0)
            return e;
        return print_expr(r, o, SL_PRIMARY, depth + 1);
    case OP_CDHASH:
        if ((e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_puts(o, "cdhash ")) < 0)
            return e;
        return print_hash(o, d, n);
    case OP_INFO_KEY_FIELD:
    case OP_ENTITLEMENT_FIELD:
        if ((e = rd_data(r, &d, &n)) < 0 ||
            (e = sx_buf_puts(o, op == OP_INFO_KEY_FIELD ? "info[" : "entitlement[")) < 0 ||
            (e = print_data(o, d, n, true)) < 0 || (e = sx_buf_putc(o, ']')) < 0)
            return e;
        return print_match(r, o);
    case OP_CERT_FIELD:
        if ((e = sx_buf_puts(o, "certificate")) < 0 || (e = print_slot(r, o)) < 0 ||
            (e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_putc(o, '[')) < 0 ||
            (e = print_data(o, d, n, true)) < 0 || (e = sx_buf_putc(o, ']')) < 0)
            return e;
        return print_match(r, o);
    case OP_CERT_GENERIC:
    case OP_CERT_POLICY:
    case OP_CERT_FIELD_DATE: {
        const char *pfx = op == OP_CERT_GENERIC  ? "[field."
                          : op == OP_CERT_POLICY ? "[policy."
                                                 : "[timestamp.";
        if ((e = sx_buf_puts(o, "certificate")) < 0 || (e = print_slot(r, o)) < 0 ||
            (e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_puts(o, pfx)) < 0 ||
            (e = print_oid(o, d, n)) < 0 || (e = sx_buf_putc(o, ']')) < 0)
            return e;
        return print_match(r, o);
    }
    case OP_TRUSTED_CERT:
        if ((e = sx_buf_puts(o, "certificate")) < 0 || (e = print_slot(r, o)) < 0)
            return e;
        return sx_buf_puts(o, " trusted");
    case OP_TRUSTED_CERTS:
        return sx_buf_puts(o, "anchor trusted");
    case OP_NAMED_ANCHOR:
        if ((e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_puts(o, "anchor apple ")) < 0)
            return e;
        return print_data(o, d, n, false);
    case OP_NAMED_CODE:
        if ((e = rd_data(r, &d, &n)) < 0 || (e = sx_buf_putc(o, '(')) < 0 ||
            (e = print_data(o, d, n, false)) < 0)
            return e;
        return sx_buf_putc(o, ')');
    case OP_PLATFORM: {
        uint32_t p;
        if ((e = sx_rd_u32be(r, &p)) < 0)
            return e;
        return sx_buf_printf(o, "platform = %d", (int32_t)p);
    }
    case OP_NOTARIZED:
        return sx_buf_puts(o, "notarized");
    case OP_LEGACY_DEVID:
        return sx_buf_puts(o, "legacy");
    default:
        if (op & (OP_FLAG_GENERIC_FALSE | OP_FLAG_GENERIC_SKIP)) {
            uint32_t skip;
            if ((e = sx_rd_u32be(r, &skip)) < 0 || (e = sx_rd_skip(r, skip)) < 0)
                return e;
            return sx_buf_printf(
                o, (op & OP_FLAG_GENERIC_FALSE) ? " false /* opcode %u */" : " /* opcode %u */",
                op & ~OP_FLAG_MASK);
        }
        return sx_err(SYSEXT_EFORMAT, "requirement: unknown opcode %u at offset %zu", op, at);
    }
}

int sx_req_to_text(const uint8_t *blob, size_t len, sx_buf *out)
{
    SX_ASSERT_ARG(blob || len == 0);
    SX_ASSERT_ARG(out);
    sx_reader r;
    int e = req_open(blob, len, &r);
    if (e < 0)
        return e;
    size_t base = out->len;
    e = print_expr(&r, out, SL_TOP, 0);
    if (e >= 0 && sx_reader_left(&r) != 0)
        e = sx_err(SYSEXT_EFORMAT,
                   "requirement: %zu trailing bytes after the expression at "
                   "offset %zu",
                   sx_reader_left(&r), sx_reader_offset(&r));
    if (e < 0)
        out->len = base;
    return e;
}

/* ------------------------------------------------------------------ compiling */

enum { T_END, T_WORD, T_STRING, T_HASH, T_PUNCT };

typedef struct lexer {
    const char *s;
    size_t pos, len;
    int tok;
    size_t start;     /* offset of the current token, for messages */
    const char *word; /* T_WORD / T_PUNCT: points into the text */
    size_t word_len;
    sx_buf str; /* T_STRING / T_HASH: decoded bytes */
    unsigned depth;
} lexer;

static bool word_char(char c)
{
    return isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-';
}

static int lex_next(lexer *lx)
{
    const char *s = lx->s;
    for (;;) {
        while (lx->pos < lx->len && isspace((unsigned char)s[lx->pos]))
            lx->pos++;
        if (lx->pos + 1 < lx->len && s[lx->pos] == '/' && s[lx->pos + 1] == '*') {
            const char *end = NULL;
            for (size_t i = lx->pos + 2; i + 1 < lx->len; i++)
                if (s[i] == '*' && s[i + 1] == '/') {
                    end = s + i;
                    break;
                }
            if (!end)
                return sx_err(SYSEXT_EFORMAT,
                              "requirement text: unterminated comment at "
                              "column %zu",
                              lx->pos + 1);
            lx->pos = (size_t)(end - s) + 2;
            continue;
        }
        break;
    }
    lx->start = lx->pos;
    if (lx->pos >= lx->len) {
        lx->tok = T_END;
        return 0;
    }
    char c = s[lx->pos];
    bool hash = c == 'H' && lx->pos + 1 < lx->len && s[lx->pos + 1] == '"';
    if (c == '"' || hash) {
        lx->pos += hash ? 2 : 1;
        lx->str.len = 0;
        for (;;) {
            if (lx->pos >= lx->len)
                return sx_err(SYSEXT_EFORMAT, "requirement text: unterminated string at column %zu",
                              lx->start + 1);
            char ch = s[lx->pos++];
            if (ch == '"')
                break;
            if (ch == '\\' && !hash) {
                if (lx->pos >= lx->len)
                    return sx_err(SYSEXT_EFORMAT,
                                  "requirement text: unterminated string at "
                                  "column %zu",
                                  lx->start + 1);
                ch = s[lx->pos++];
            }
            if (lx->str.len >= REQ_MAX_DATA * 2)
                return sx_err(SYSEXT_ELIMIT, "requirement text: string at column %zu is too long",
                              lx->start + 1);
            int e = sx_buf_putc(&lx->str, ch);
            if (e < 0)
                return e;
        }
        if (hash) {
            size_t nhex = lx->str.len;
            if (nhex % 2 || nhex == 0)
                return sx_err(SYSEXT_EFORMAT,
                              "requirement text: hash at column %zu needs an even, "
                              "non-zero number of hex digits",
                              lx->start + 1);
            uint8_t *bin = malloc(nhex / 2);
            if (!bin)
                return sx_err(SYSEXT_ENOMEM, "requirement text: out of memory");
            int e = sx_hex_decode((const char *)lx->str.data, bin, nhex / 2);
            if (e < 0) {
                free(bin);
                return sx_err(SYSEXT_EFORMAT, "requirement text: hash at column %zu is not hex",
                              lx->start + 1);
            }
            lx->str.len = 0;
            e = sx_buf_append(&lx->str, bin, nhex / 2);
            free(bin);
            if (e < 0)
                return e;
            lx->tok = T_HASH;
        } else {
            lx->tok = T_STRING;
        }
        return 0;
    }
    if (word_char(c)) {
        while (lx->pos < lx->len && word_char(s[lx->pos]))
            lx->pos++;
        lx->tok = T_WORD;
        lx->word = s + lx->start;
        lx->word_len = lx->pos - lx->start;
        return 0;
    }
    if ((c == '<' || c == '>') && lx->pos + 1 < lx->len && s[lx->pos + 1] == '=')
        lx->pos += 2;
    else if (strchr("()[]!=~<>*", c))
        lx->pos += 1;
    else
        return sx_err(SYSEXT_EFORMAT, "requirement text: unexpected character '%c' at column %zu",
                      c, lx->pos + 1);
    lx->tok = T_PUNCT;
    lx->word = s + lx->start;
    lx->word_len = lx->pos - lx->start;
    return 0;
}

static bool is_word(const lexer *lx, const char *w)
{
    return lx->tok == T_WORD && lx->word_len == strlen(w) && memcmp(lx->word, w, lx->word_len) == 0;
}

static bool is_punct(const lexer *lx, const char *p)
{
    return lx->tok == T_PUNCT && lx->word_len == strlen(p) &&
           memcmp(lx->word, p, lx->word_len) == 0;
}

static int expected(const lexer *lx, const char *what)
{
    if (lx->tok == T_END)
        return sx_err(SYSEXT_EFORMAT, "requirement text: expected %s at the end", what);
    return sx_err(SYSEXT_EFORMAT, "requirement text: expected %s at column %zu", what,
                  lx->start + 1);
}

static int put_data(sx_buf *o, const void *d, size_t n)
{
    static const uint8_t zero[3];
    if (n > REQ_MAX_DATA)
        return sx_err(SYSEXT_ELIMIT, "requirement: operand of %zu bytes is too long", n);
    int e = sx_buf_put_u32be(o, (uint32_t)n);
    if (e >= 0 && n)
        e = sx_buf_append(o, d, n);
    if (e >= 0 && n % 4)
        e = sx_buf_append(o, zero, 4 - n % 4);
    return e;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
}

static bool hex_word(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Current token as a data value (string, bare word or hash); advances. */
static int take_value(lexer *lx, sx_buf *o, const char *what)
{
    int e;
    if (lx->tok == T_STRING || lx->tok == T_HASH) {
        e = put_data(o, lx->str.data, lx->str.len);
    } else if (lx->tok == T_WORD && lx->word_len > 2 && lx->word_len % 2 == 0 &&
               memcmp(lx->word, "0x", 2) == 0 && hex_word(lx->word + 2, lx->word_len - 2)) {
        /* 0x<hex>: binary data, as codesign prints non-printable operands */
        uint8_t bin[REQ_MAX_DATA];
        size_t n = (lx->word_len - 2) / 2;
        if (n > sizeof(bin))
            return sx_err(SYSEXT_ELIMIT, "requirement text: hex data at column %zu is too long",
                          lx->start + 1);
        for (size_t i = 0; i < n; i++)
            bin[i] = (uint8_t)(hexval(lx->word[2 + 2 * i]) << 4 | hexval(lx->word[3 + 2 * i]));
        e = put_data(o, bin, n);
    } else if (lx->tok == T_WORD) {
        e = put_data(o, lx->word, lx->word_len);
    } else
        return expected(lx, what);
    return e < 0 ? e : lex_next(lx);
}

static int encode_oid(const char *s, size_t n, sx_buf *o)
{
    uint8_t der[64];
    size_t len = 0;
    uint64_t arcs[32];
    size_t na = 0;
    size_t i = 0;
    while (i < n) {
        if (!isdigit((unsigned char)s[i]) || na == SX_ARRAY_SIZE(arcs))
            return -1;
        uint64_t v = 0;
        while (i < n && isdigit((unsigned char)s[i])) {
            if (v > (UINT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (uint64_t)(s[i++] - '0');
        }
        arcs[na++] = v;
        if (i < n) {
            if (s[i] != '.' || i + 1 == n)
                return -1;
            i++;
        }
    }
    if (na < 2 || arcs[0] > 2 || (arcs[0] < 2 && arcs[1] >= 40) || arcs[1] > UINT64_MAX - 80)
        return -1;
    arcs[1] += arcs[0] * 40;
    for (size_t a = 1; a < na; a++) {
        uint8_t tmp[10];
        size_t k = 0;
        uint64_t v = arcs[a];
        do {
            tmp[k++] = (uint8_t)(v & 0x7f);
            v >>= 7;
        } while (v);
        if (len + k > sizeof(der))
            return -1;
        while (k) {
            k--;
            der[len++] = (uint8_t)(tmp[k] | (k ? 0x80 : 0));
        }
    }
    return put_data(o, der, len);
}

/* Match suffix; no operator means "exists" (how codesign reads its own printed text). */
static int parse_match(lexer *lx, sx_buf *o)
{
    int e;
    if (is_word(lx, "exists")) {
        e = sx_buf_put_u32be(o, M_EXISTS);
        return e < 0 ? e : lex_next(lx);
    }
    if (is_word(lx, "absent")) {
        e = sx_buf_put_u32be(o, M_ABSENT);
        return e < 0 ? e : lex_next(lx);
    }
    uint32_t m;
    if (is_punct(lx, "=")) {
        if ((e = lex_next(lx)) < 0)
            return e;
        bool lead = false;
        if (is_punct(lx, "*")) {
            lead = true;
            if ((e = lex_next(lx)) < 0)
                return e;
        }
        sx_buf val = SX_BUF_INIT;
        if ((e = take_value(lx, &val, "a value after '='")) < 0) {
            sx_buf_free(&val);
            return e;
        }
        bool trail = is_punct(lx, "*");
        if (trail && (e = lex_next(lx)) < 0) {
            sx_buf_free(&val);
            return e;
        }
        m = lead && trail ? M_CONTAINS : lead ? M_ENDS : trail ? M_BEGINS : M_EQUAL;
        e = sx_buf_put_u32be(o, m);
        if (e >= 0)
            e = sx_buf_append(o, val.data, val.len);
        sx_buf_free(&val);
        return e;
    }
    if (is_punct(lx, "~"))
        m = M_CONTAINS;
    else if (is_punct(lx, "<"))
        m = M_LT;
    else if (is_punct(lx, ">"))
        m = M_GT;
    else if (is_punct(lx, "<="))
        m = M_LE;
    else if (is_punct(lx, ">="))
        m = M_GE;
    else
        return sx_buf_put_u32be(o, M_EXISTS);
    if ((e = lex_next(lx)) < 0 || (e = sx_buf_put_u32be(o, m)) < 0)
        return e;
    return take_value(lx, o, "a value");
}

static int parse_slot(lexer *lx, int32_t *slot)
{
    if (is_word(lx, "leaf"))
        *slot = 0;
    else if (is_word(lx, "root") || is_word(lx, "anchor"))
        *slot = -1;
    else if (lx->tok == T_WORD) {
        char buf[16];
        if (lx->word_len >= sizeof(buf))
            return expected(lx, "a certificate index");
        memcpy(buf, lx->word, lx->word_len);
        buf[lx->word_len] = '\0';
        char *end;
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (*end || errno || v < -64 || v > 64)
            return expected(lx, "a certificate index (leaf, root or a number)");
        *slot = (int32_t)v;
    } else {
        return expected(lx, "a certificate index (leaf, root or a number)");
    }
    return lex_next(lx);
}

/* After "certificate SLOT" (or "anchor" meaning root): = H"..", trusted, or [field] match. */
static int parse_cert_rest(lexer *lx, int32_t slot, sx_buf *o)
{
    int e;
    if (is_punct(lx, "=")) {
        if ((e = lex_next(lx)) < 0)
            return e;
        if (lx->tok != T_HASH)
            return expected(lx, "a certificate hash H\"...\"");
        if ((e = sx_buf_put_u32be(o, OP_ANCHOR_HASH)) < 0 ||
            (e = sx_buf_put_u32be(o, (uint32_t)slot)) < 0 ||
            (e = put_data(o, lx->str.data, lx->str.len)) < 0)
            return e;
        return lex_next(lx);
    }
    if (is_word(lx, "trusted")) {
        if ((e = sx_buf_put_u32be(o, OP_TRUSTED_CERT)) < 0 ||
            (e = sx_buf_put_u32be(o, (uint32_t)slot)) < 0)
            return e;
        return lex_next(lx);
    }
    if (!is_punct(lx, "["))
        return expected(lx, "'=', 'trusted' or '['");
    if ((e = lex_next(lx)) < 0)
        return e;
    const char *f;
    size_t fn;
    if (lx->tok == T_WORD) {
        f = lx->word;
        fn = lx->word_len;
    } else if (lx->tok == T_STRING) {
        f = (const char *)lx->str.data;
        fn = lx->str.len;
    } else {
        return expected(lx, "a certificate field name");
    }
    static const struct {
        const char *pfx;
        uint32_t op;
    } oid_fields[] = {{"field.", OP_CERT_GENERIC},
                      {"policy.", OP_CERT_POLICY},
                      {"timestamp.", OP_CERT_FIELD_DATE}};
    bool done = false;
    for (size_t i = 0; i < SX_ARRAY_SIZE(oid_fields) && !done; i++) {
        size_t pl = strlen(oid_fields[i].pfx);
        if (fn > pl && memcmp(f, oid_fields[i].pfx, pl) == 0) {
            if ((e = sx_buf_put_u32be(o, oid_fields[i].op)) < 0 ||
                (e = sx_buf_put_u32be(o, (uint32_t)slot)) < 0)
                return e;
            e = encode_oid(f + pl, fn - pl, o);
            if (e == -1)
                return sx_err(SYSEXT_EFORMAT, "requirement text: bad OID at column %zu",
                              lx->start + 1);
            if (e < 0)
                return e;
            done = true;
        }
    }
    if (!done) {
        if ((e = sx_buf_put_u32be(o, OP_CERT_FIELD)) < 0 ||
            (e = sx_buf_put_u32be(o, (uint32_t)slot)) < 0 || (e = put_data(o, f, fn)) < 0)
            return e;
    }
    if ((e = lex_next(lx)) < 0)
        return e;
    if (!is_punct(lx, "]"))
        return expected(lx, "']'");
    if ((e = lex_next(lx)) < 0)
        return e;
    return parse_match(lx, o);
}

static int parse_expr(lexer *lx, sx_buf *o);

static int parse_primary(lexer *lx, sx_buf *o)
{
    int e;
    if (++lx->depth > REQ_MAX_PARENS)
        return sx_err(SYSEXT_ELIMIT, "requirement text: nested deeper than %d at column %zu",
                      REQ_MAX_PARENS, lx->start + 1);
    if (is_punct(lx, "(")) {
        if ((e = lex_next(lx)) < 0 || (e = parse_expr(lx, o)) < 0)
            goto out;
        if (!is_punct(lx, ")")) {
            e = expected(lx, "')'");
            goto out;
        }
        e = lex_next(lx);
    } else if (is_punct(lx, "!")) {
        if ((e = lex_next(lx)) < 0 || (e = sx_buf_put_u32be(o, OP_NOT)) < 0)
            goto out;
        e = parse_primary(lx, o);
    } else if (is_word(lx, "always") || is_word(lx, "true")) {
        if ((e = sx_buf_put_u32be(o, OP_TRUE)) >= 0)
            e = lex_next(lx);
    } else if (is_word(lx, "never") || is_word(lx, "false")) {
        if ((e = sx_buf_put_u32be(o, OP_FALSE)) >= 0)
            e = lex_next(lx);
    } else if (is_word(lx, "notarized")) {
        if ((e = sx_buf_put_u32be(o, OP_NOTARIZED)) >= 0)
            e = lex_next(lx);
    } else if (is_word(lx, "legacy")) {
        if ((e = sx_buf_put_u32be(o, OP_LEGACY_DEVID)) >= 0)
            e = lex_next(lx);
    } else if (is_word(lx, "identifier")) {
        if ((e = lex_next(lx)) < 0)
            goto out;
        if (is_punct(lx, "=") && (e = lex_next(lx)) < 0)
            goto out;
        if ((e = sx_buf_put_u32be(o, OP_IDENT)) >= 0)
            e = take_value(lx, o, "an identifier");
    } else if (is_word(lx, "cdhash")) {
        if ((e = lex_next(lx)) < 0)
            goto out;
        if (is_punct(lx, "=") && (e = lex_next(lx)) < 0)
            goto out;
        if (lx->tok != T_HASH) {
            e = expected(lx, "a hash H\"...\"");
            goto out;
        }
        if ((e = sx_buf_put_u32be(o, OP_CDHASH)) >= 0 &&
            (e = put_data(o, lx->str.data, lx->str.len)) >= 0)
            e = lex_next(lx);
    } else if (is_word(lx, "platform")) {
        if ((e = lex_next(lx)) < 0)
            goto out;
        if (!is_punct(lx, "=")) {
            e = expected(lx, "'='");
            goto out;
        }
        if ((e = lex_next(lx)) < 0)
            goto out;
        char buf[16];
        char *end;
        if (lx->tok != T_WORD || lx->word_len >= sizeof(buf)) {
            e = expected(lx, "a platform number");
            goto out;
        }
        memcpy(buf, lx->word, lx->word_len);
        buf[lx->word_len] = '\0';
        errno = 0;
        long v = strtol(buf, &end, 10);
        if (*end || errno || v < INT32_MIN || v > INT32_MAX) {
            e = expected(lx, "a platform number");
            goto out;
        }
        if ((e = sx_buf_put_u32be(o, OP_PLATFORM)) >= 0 &&
            (e = sx_buf_put_u32be(o, (uint32_t)(int32_t)v)) >= 0)
            e = lex_next(lx);
    } else if (is_word(lx, "anchor")) {
        if ((e = lex_next(lx)) < 0)
            goto out;
        if (is_word(lx, "apple")) {
            if ((e = lex_next(lx)) < 0)
                goto out;
            if (is_word(lx, "generic")) {
                if ((e = sx_buf_put_u32be(o, OP_APPLE_GENERIC_ANCHOR)) >= 0)
                    e = lex_next(lx);
            } else if (lx->tok == T_STRING ||
                       (lx->tok == T_WORD && !is_keyword(lx->word, lx->word_len))) {
                if ((e = sx_buf_put_u32be(o, OP_NAMED_ANCHOR)) >= 0)
                    e = take_value(lx, o, "an anchor name");
            } else {
                e = sx_buf_put_u32be(o, OP_APPLE_ANCHOR);
            }
        } else if (is_word(lx, "trusted")) {
            if ((e = sx_buf_put_u32be(o, OP_TRUSTED_CERTS)) >= 0)
                e = lex_next(lx);
        } else {
            e = parse_cert_rest(lx, -1, o);
        }
    } else if (is_word(lx, "certificate") || is_word(lx, "cert")) {
        int32_t slot = 0;
        if ((e = lex_next(lx)) < 0 || (e = parse_slot(lx, &slot)) < 0)
            goto out;
        e = parse_cert_rest(lx, slot, o);
    } else if (is_word(lx, "info") || is_word(lx, "entitlement")) {
        uint32_t op = is_word(lx, "info") ? OP_INFO_KEY_FIELD : OP_ENTITLEMENT_FIELD;
        if ((e = lex_next(lx)) < 0)
            goto out;
        if (!is_punct(lx, "[")) {
            e = expected(lx, "'['");
            goto out;
        }
        if ((e = lex_next(lx)) < 0 || (e = sx_buf_put_u32be(o, op)) < 0 ||
            (e = take_value(lx, o, "a key")) < 0)
            goto out;
        if (!is_punct(lx, "]")) {
            e = expected(lx, "']'");
            goto out;
        }
        if ((e = lex_next(lx)) < 0)
            goto out;
        e = parse_match(lx, o);
    } else {
        e = expected(lx, "a requirement clause");
    }
out:
    lx->depth--;
    return e;
}

static int insert_op(sx_buf *o, size_t at, uint32_t op)
{
    int e = sx_buf_put_u32be(o, 0);
    if (e < 0)
        return e;
    memmove(o->data + at + 4, o->data + at, o->len - 4 - at);
    sx_buf_set_u32be(o, at, op);
    return 0;
}

/* `and` chains nest to the right, and(a, and(b, c)), as codesign's DR maker writes them;
 * `or` chains nest to the left, or(or(a, b), c), as codesign's compiler wrote ls's library
 * requirement. Both forms print the same; this choice keeps compiled bytes identical. */
static int parse_term(lexer *lx, sx_buf *o)
{
    size_t last = o->len;
    int e = parse_primary(lx, o);
    while (e >= 0 && is_word(lx, "and")) {
        if ((e = insert_op(o, last, OP_AND)) < 0 || (e = lex_next(lx)) < 0)
            break;
        last = o->len;
        e = parse_primary(lx, o);
    }
    return e;
}

static int parse_expr(lexer *lx, sx_buf *o)
{
    size_t start = o->len;
    int e = parse_term(lx, o);
    while (e >= 0 && is_word(lx, "or")) {
        if ((e = insert_op(o, start, OP_OR)) < 0 || (e = lex_next(lx)) < 0)
            break;
        e = parse_term(lx, o);
    }
    return e;
}

int sx_req_compile(const char *text, sx_buf *out)
{
    SX_ASSERT_ARG(text);
    SX_ASSERT_ARG(out);
    lexer lx = {.s = text, .len = strlen(text)};
    if (lx.len > REQ_MAX_TEXT)
        return sx_err(SYSEXT_ELIMIT, "requirement text: %zu characters exceed the limit of %u",
                      lx.len, REQ_MAX_TEXT);
    sx_buf o = SX_BUF_INIT;
    int e = sx_buf_put_u32be(&o, SX_CSMAGIC_REQUIREMENT);
    if (e >= 0)
        e = sx_buf_put_u32be(&o, 0);
    if (e >= 0)
        e = sx_buf_put_u32be(&o, 1);
    if (e >= 0)
        e = lex_next(&lx);
    if (e >= 0)
        e = parse_expr(&lx, &o);
    if (e >= 0 && lx.tok != T_END)
        e = expected(&lx, "'and', 'or' or the end");
    if (e >= 0 && o.len > UINT32_MAX)
        e = sx_err(SYSEXT_ELIMIT, "requirement: too large");
    if (e >= 0) {
        sx_buf_set_u32be(&o, 4, (uint32_t)o.len);
        /* A long and/or chain nests one level per clause: refuse what readers would refuse. */
        sx_buf scratch = SX_BUF_INIT;
        if (sx_req_to_text(o.data, o.len, &scratch) < 0)
            e = sx_err(SYSEXT_ELIMIT, "requirement text: more than %d nested clauses",
                       REQ_MAX_DEPTH);
        sx_buf_free(&scratch);
    }
    if (e >= 0) {
        e = sx_buf_append(out, o.data, o.len);
    }
    sx_buf_free(&o);
    sx_buf_free(&lx.str);
    return e;
}

/* ------------------------------------------------------------------ requirement sets */

int sx_reqset_build_entries(const uint32_t *types, const uint8_t *const *reqs, const size_t *lens,
                            size_t n, sx_buf *out)
{
    SX_ASSERT_ARG(out);
    SX_ASSERT_ARG(n == 0 || (types && reqs && lens));
    if (n > 16)
        return sx_err(SYSEXT_EINVAL, "requirement set: %zu entries", n);
    sx_blob_ref refs[16];
    for (size_t i = 0; i < n; i++) {
        sx_reader r;
        int e = req_open(reqs[i], lens[i], &r);
        if (e < 0)
            return e;
        refs[i] = (sx_blob_ref){
            .type = types[i], .magic = SX_CSMAGIC_REQUIREMENT, .data = reqs[i], .len = r.len + 12};
    }
    return sx_superblob_build_magic(SX_CSMAGIC_REQUIREMENTS, refs, n, out);
}

int sx_reqset_build(const uint8_t *dr, size_t dr_len, sx_buf *out)
{
    uint32_t type = SX_REQ_DESIGNATED;
    return sx_reqset_build_entries(&type, &dr, &dr_len, dr ? 1 : 0, out);
}

int sx_reqset_find(const uint8_t *set, size_t len, uint32_t type, const uint8_t **req,
                   size_t *req_len)
{
    SX_ASSERT_ARG(req);
    SX_ASSERT_ARG(req_len);
    sx_superblob sb;
    int e = sx_superblob_parse(set, len, "requirement set", &sb);
    if (e < 0)
        return e;
    if (sb.magic != SX_CSMAGIC_REQUIREMENTS) {
        sx_superblob_free(&sb);
        return sx_err(SYSEXT_EFORMAT, "requirement set: magic 0x%08x, expected 0x%08x", sb.magic,
                      SX_CSMAGIC_REQUIREMENTS);
    }
    const sx_blob_ref *b = sx_superblob_find(&sb, type);
    if (!b) {
        sx_superblob_free(&sb);
        return sx_err(SYSEXT_ENOTFOUND, "requirement set: no requirement of type %u", type);
    }
    if (b->magic != SX_CSMAGIC_REQUIREMENT) {
        e = sx_err(SYSEXT_EFORMAT,
                   "requirement set: entry of type %u has magic 0x%08x, expected "
                   "0x%08x",
                   type, b->magic, SX_CSMAGIC_REQUIREMENT);
    } else {
        *req = b->data;
        *req_len = b->len;
    }
    sx_superblob_free(&sb);
    return e;
}

int sx_reqset_to_text(const uint8_t *set, size_t len, sx_buf *out)
{
    static const char *const names[] = {"invalid",    "host",    "guest",
                                        "designated", "library", "plugin"};
    SX_ASSERT_ARG(out);
    sx_superblob sb;
    int e = sx_superblob_parse(set, len, "requirement set", &sb);
    if (e < 0)
        return e;
    size_t base = out->len;
    if (sb.magic != SX_CSMAGIC_REQUIREMENTS)
        e = sx_err(SYSEXT_EFORMAT, "requirement set: magic 0x%08x, expected 0x%08x", sb.magic,
                   SX_CSMAGIC_REQUIREMENTS);
    for (size_t i = 0; i < sb.count && e >= 0; i++) {
        uint32_t t = sb.blobs[i].type;
        if (t < SX_ARRAY_SIZE(names))
            e = sx_buf_printf(out, "%s => ", names[t]);
        else
            e = sx_buf_printf(out, "%u => ", t);
        if (e >= 0)
            e = sx_req_to_text(sb.blobs[i].data, sb.blobs[i].len, out);
        if (e >= 0)
            e = sx_buf_putc(out, '\n');
    }
    if (e < 0)
        out->len = base;
    sx_superblob_free(&sb);
    return e;
}

/* ------------------------------------------------------------------ designated requirement */

static int subject_text(X509 *cert, int nid, char **out)
{
    X509_NAME *name = X509_get_subject_name(cert);
    int i = name ? X509_NAME_get_index_by_NID(name, nid, -1) : -1;
    if (i < 0)
        return SYSEXT_ENOTFOUND;
    ASN1_STRING *s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
    unsigned char *utf8 = NULL;
    int n = ASN1_STRING_to_UTF8(&utf8, s);
    if (n < 0)
        return sx_err(SYSEXT_EFORMAT, "certificate: subject field is not a valid string");
    *out = strndup((const char *)utf8, (size_t)n);
    OPENSSL_free(utf8);
    return *out ? 0 : sx_err(SYSEXT_ENOMEM, "out of memory");
}

int sx_req_designated_text(const char *identifier, sx_signer_kind kind, X509 *leaf,
                           const char *team_id, const uint8_t *cdhash, sx_buf *out)
{
    SX_ASSERT_ARG(out);
    int e;
    size_t base = out->len;
    if (kind == SX_SIGNER_ADHOC) {
        SX_ASSERT_ARG(cdhash);
        if ((e = sx_buf_puts(out, "cdhash ")) >= 0)
            e = print_hash(out, cdhash, SX_CDHASH_LEN);
        goto done;
    }
    SX_ASSERT_ARG(identifier);
    SX_ASSERT_ARG(leaf);
    if ((e = sx_buf_puts(out, "identifier ")) < 0 ||
        (e = print_data(out, (const uint8_t *)identifier, strlen(identifier), false)) < 0)
        goto done;
    switch (kind) {
    case SX_SIGNER_DEVELOPER_ID: {
        _sx_cleanup_free_ char *ou = NULL;
        const char *team = team_id;
        if (!team) {
            e = subject_text(leaf, NID_organizationalUnitName, &ou);
            if (e == SYSEXT_ENOTFOUND)
                e = sx_err(SYSEXT_EINVALID, "designated requirement: the leaf has no subject OU "
                                            "(team ID)");
            if (e < 0)
                goto done;
            team = ou;
        }
        if ((e = sx_buf_puts(out, " and anchor apple generic and certificate "
                                  "1[field.1.2.840.113635.100.6.2.6] /* exists */ and certificate "
                                  "leaf[field.1.2.840.113635.100.6.1.13] /* exists */ and "
                                  "certificate leaf[subject.OU] = ")) >= 0)
            e = print_data(out, (const uint8_t *)team, strlen(team), false);
        break;
    }
    case SX_SIGNER_DEVELOPMENT: {
        _sx_cleanup_free_ char *cn = NULL;
        e = subject_text(leaf, NID_commonName, &cn);
        if (e == SYSEXT_ENOTFOUND)
            e = sx_err(SYSEXT_EINVALID, "designated requirement: the leaf has no subject CN");
        if (e < 0)
            goto done;
        if ((e = sx_buf_puts(
                 out, " and anchor apple generic and certificate leaf[subject.CN] = ")) < 0 ||
            (e = print_data(out, (const uint8_t *)cn, strlen(cn), false)) < 0)
            goto done;
        e = sx_buf_puts(out, " and certificate 1[field.1.2.840.113635.100.6.2.1] /* exists */");
        break;
    }
    default: {
        /* Only the leaf is known here, so the pinned certificate is the leaf itself
         * (what codesign writes for a self-signed or organisation-less leaf). */
        uint8_t sha1[EVP_MAX_MD_SIZE];
        unsigned n = 0;
        if (!X509_digest(leaf, EVP_sha1(), sha1, &n) || n != 20) {
            e = sx_err(SYSEXT_ERROR, "designated requirement: SHA-1 of the leaf failed");
            goto done;
        }
        if ((e = sx_buf_puts(out, " and certificate leaf = ")) >= 0)
            e = print_hash(out, sha1, 20);
        break;
    }
    }
done:
    if (e < 0)
        out->len = base;
    return e;
}

static int subject_o(X509 *c, char **out)
{
    *out = NULL;
    int e = subject_text(c, NID_organizationName, out);
    return e == SYSEXT_ENOTFOUND ? 0 : e;
}

int sx_req_designated_text_chain(const char *identifier, STACK_OF(X509) * chain, sx_buf *out)
{
    SX_ASSERT_ARG(identifier);
    SX_ASSERT_ARG(chain);
    SX_ASSERT_ARG(out);
    int n = sk_X509_num(chain);
    if (n < 1)
        return sx_err(SYSEXT_EINVAL, "designated requirement: empty certificate chain");
    _sx_cleanup_free_ char *leaf_o = NULL;
    int e = subject_o(sk_X509_value(chain, 0), &leaf_o);
    if (e < 0)
        return e;
    int slot = 0;
    if (leaf_o) {
        while (slot + 1 < n) {
            _sx_cleanup_free_ char *ca_o = NULL;
            if ((e = subject_o(sk_X509_value(chain, slot + 1), &ca_o)) < 0)
                return e;
            if (!ca_o || strcmp(ca_o, leaf_o) != 0)
                break;
            slot++;
        }
    }
    uint8_t sha1[EVP_MAX_MD_SIZE];
    unsigned hn = 0;
    if (!X509_digest(sk_X509_value(chain, slot), EVP_sha1(), sha1, &hn) || hn != 20)
        return sx_err(SYSEXT_ERROR, "designated requirement: SHA-1 of certificate %d failed", slot);
    size_t base = out->len;
    if ((e = sx_buf_puts(out, "identifier ")) >= 0 &&
        (e = print_data(out, (const uint8_t *)identifier, strlen(identifier), false)) >= 0) {
        if (leaf_o && slot == n - 1)
            e = sx_buf_puts(out, " and certificate root = ");
        else if (slot == 0)
            e = sx_buf_puts(out, " and certificate leaf = ");
        else
            e = sx_buf_printf(out, " and certificate %d = ", slot);
    }
    if (e >= 0)
        e = print_hash(out, sha1, 20);
    if (e < 0)
        out->len = base;
    return e;
}

/* ------------------------------------------------------------------ evaluation */

typedef struct evaluator {
    const sx_req_context *ctx;
    int failed;      /* a failing clause has been recorded */
    size_t fail_at;  /* its offset in the expression window */
    sx_reader whole; /* the expression window, for printing the failing clause */
} evaluator;

static X509 *chain_cert(const sx_req_context *ctx, int32_t slot)
{
    if (!ctx->chain)
        return NULL;
    int n = sk_X509_num(ctx->chain);
    int i = slot >= 0 ? slot : n + slot;
    if (i < 0 || i >= n)
        return NULL;
    return sk_X509_value(ctx->chain, i);
}

static bool match_string(uint32_t m, const char *v, size_t vn, const uint8_t *d, size_t dn)
{
    int c;
    switch (m) {
    case M_EXISTS:
        return true;
    case M_EQUAL:
        return vn == dn && memcmp(v, d, dn) == 0;
    case M_CONTAINS:
        return dn == 0 || (vn >= dn && memmem(v, vn, d, dn) != NULL);
    case M_BEGINS:
        return vn >= dn && memcmp(v, d, dn) == 0;
    case M_ENDS:
        return vn >= dn && memcmp(v + vn - dn, d, dn) == 0;
    case M_LT:
    case M_GT:
    case M_LE:
    case M_GE:
        c = memcmp(v, d, vn < dn ? vn : dn);
        if (c == 0)
            c = vn < dn ? -1 : vn > dn;
        return m == M_LT ? c < 0 : m == M_GT ? c > 0 : m == M_LE ? c <= 0 : c >= 0;
    default:
        return false;
    }
}

/* Read a match suffix; d and dn get the operand (empty for exists/absent/date ops). */
static int read_match(sx_reader *r, uint32_t *m, const uint8_t **d, size_t *dn)
{
    int e = sx_rd_u32be(r, m);
    *d = NULL;
    *dn = 0;
    if (e < 0)
        return e;
    if (*m == M_EXISTS || *m == M_ABSENT)
        return 0;
    if (*m >= M_ON && *m <= M_ON_OR_AFTER)
        return sx_rd_skip(r, 8);
    if (*m > M_ABSENT)
        return sx_err(SYSEXT_EFORMAT, "requirement: match operation %u at offset %zu is unknown",
                      *m, sx_reader_offset(r) - 4);
    return rd_data(r, d, dn);
}

static bool match_plist(uint32_t m, plist_t v, const uint8_t *d, size_t dn, unsigned depth)
{
    if (m == M_ABSENT)
        return v == NULL;
    if (!v)
        return false;
    if (m == M_EXISTS)
        return true;
    switch (plist_get_node_type(v)) {
    case PLIST_STRING: {
        uint64_t n = 0;
        const char *s = plist_get_string_ptr(v, &n);
        return s && match_string(m, s, strlen(s), d, dn);
    }
    case PLIST_BOOLEAN: {
        uint8_t b = 0;
        plist_get_bool_val(v, &b);
        const char *s = b ? "true" : "false";
        return match_string(m, s, strlen(s), d, dn);
    }
    case PLIST_UINT: {
        uint64_t u = 0;
        char s[32];
        plist_get_uint_val(v, &u);
        int n = snprintf(s, sizeof(s), "%lld", (long long)u);
        return n > 0 && (size_t)n < sizeof(s) && match_string(m, s, (size_t)n, d, dn);
    }
    case PLIST_ARRAY: /* any element */
        if (depth > 4)
            return false;
        for (uint32_t i = 0; i < plist_array_get_size(v); i++)
            if (match_plist(m, plist_array_get_item(v, i), d, dn, depth + 1))
                return true;
        return false;
    default:
        return false;
    }
}

static int field_nid(const uint8_t *f, size_t n)
{
    static const struct {
        const char *name;
        int nid;
    } map[] = {
        {"subject.C", NID_countryName},
        {"subject.CN", NID_commonName},
        {"subject.D", NID_description},
        {"subject.L", NID_localityName},
        {"subject.O", NID_organizationName},
        {"subject.C-O", NID_organizationName},
        {"subject.OU", NID_organizationalUnitName},
        {"subject.C-OU", NID_organizationalUnitName},
        {"subject.ST", NID_stateOrProvinceName},
        {"subject.C-ST", NID_stateOrProvinceName},
        {"subject.STREET", NID_streetAddress},
        {"subject.C-STREET", NID_streetAddress},
        {"subject.UID", NID_userId},
        {"email", NID_pkcs9_emailAddress},
    };
    for (size_t i = 0; i < SX_ARRAY_SIZE(map); i++)
        if (strlen(map[i].name) == n && memcmp(map[i].name, f, n) == 0)
            return map[i].nid;
    return NID_undef;
}

static bool cert_subject_match(X509 *c, int nid, uint32_t m, const uint8_t *d, size_t dn)
{
    X509_NAME *name = X509_get_subject_name(c);
    bool any = false;
    for (int i = -1; name && (i = X509_NAME_get_index_by_NID(name, nid, i)) >= 0;) {
        unsigned char *utf8 = NULL;
        int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
        if (n < 0)
            continue;
        any = true;
        bool ok = match_string(m, (const char *)utf8, (size_t)n, d, dn);
        OPENSSL_free(utf8);
        if (ok && m != M_ABSENT)
            return true;
    }
    if (m == M_ABSENT)
        return !any;
    return false;
}

static int cert_ext_index(X509 *c, const uint8_t *oid, size_t n)
{
    for (int i = 0; i < X509_get_ext_count(c); i++) {
        ASN1_OBJECT *o = X509_EXTENSION_get_object(X509_get_ext(c, i));
        const unsigned char *p = OBJ_get0_data(o);
        if (p && (size_t)OBJ_length(o) == n && memcmp(p, oid, n) == 0)
            return i;
    }
    return -1;
}

static bool cert_has_policy(X509 *c, const uint8_t *oid, size_t n)
{
    CERTIFICATEPOLICIES *pol = X509_get_ext_d2i(c, NID_certificate_policies, NULL, NULL);
    bool found = false;
    for (int i = 0; pol && i < sk_POLICYINFO_num(pol) && !found; i++) {
        ASN1_OBJECT *o = sk_POLICYINFO_value(pol, i)->policyid;
        const unsigned char *p = OBJ_get0_data(o);
        found = p && (size_t)OBJ_length(o) == n && memcmp(p, oid, n) == 0;
    }
    CERTIFICATEPOLICIES_free(pol);
    return found;
}

static bool apple_code_signing_chain(const sx_req_context *ctx)
{
    X509 *ca = chain_cert(ctx, 1);
    char cn[128], o[64];
    if (!ctx->anchor_is_apple || !ca)
        return false;
    X509_NAME *name = X509_get_subject_name(ca);
    if (X509_NAME_get_text_by_NID(name, NID_commonName, cn, sizeof(cn)) < 0 ||
        X509_NAME_get_text_by_NID(name, NID_organizationName, o, sizeof(o)) < 0)
        return false;
    return strcmp(cn, "Apple Code Signing Certification Authority") == 0 &&
           strcmp(o, "Apple Inc.") == 0;
}

static int eval_expr(evaluator *ev, sx_reader *r, unsigned depth, bool *res);

static int eval_leaf(evaluator *ev, sx_reader *r, uint32_t op, size_t at, bool *res)
{
    const sx_req_context *ctx = ev->ctx;
    const uint8_t *d, *d2;
    size_t n, n2;
    uint32_t u, m;
    int e;
    switch (op) {
    case OP_FALSE:
        *res = false;
        return 0;
    case OP_TRUE:
        *res = true;
        return 0;
    case OP_IDENT:
        if ((e = rd_data(r, &d, &n)) < 0)
            return e;
        *res =
            ctx->identifier && strlen(ctx->identifier) == n && memcmp(ctx->identifier, d, n) == 0;
        return 0;
    case OP_APPLE_ANCHOR:
        *res = apple_code_signing_chain(ctx);
        return 0;
    case OP_APPLE_GENERIC_ANCHOR:
        *res = (ctx->anchor_is_apple || ctx->developer_anchor) && ctx->chain;
        return 0;
    case OP_TRUSTED_CERTS:
        *res = ctx->anchor_trusted && ctx->chain;
        return 0;
    case OP_ANCHOR_HASH: {
        if ((e = sx_rd_u32be(r, &u)) < 0 || (e = rd_data(r, &d, &n)) < 0)
            return e;
        X509 *c = chain_cert(ctx, (int32_t)u);
        uint8_t sha1[EVP_MAX_MD_SIZE];
        unsigned sn = 0;
        *res = c && n == 20 && X509_digest(c, EVP_sha1(), sha1, &sn) && sn == 20 &&
               memcmp(sha1, d, 20) == 0;
        return 0;
    }
    case OP_TRUSTED_CERT:
        if ((e = sx_rd_u32be(r, &u)) < 0)
            return e;
        *res = ctx->anchor_trusted && chain_cert(ctx, (int32_t)u) != NULL;
        return 0;
    case OP_CDHASH:
        if ((e = rd_data(r, &d, &n)) < 0)
            return e;
        *res = false;
        for (size_t i = 0; i < ctx->n_cdhashes && n == SX_CDHASH_LEN; i++)
            if (ctx->cdhashes[i] && memcmp(ctx->cdhashes[i], d, n) == 0)
                *res = true;
        return 0;
    case OP_INFO_KEY_VALUE:
    case OP_INFO_KEY_FIELD:
    case OP_ENTITLEMENT_FIELD: {
        if ((e = rd_data(r, &d, &n)) < 0)
            return e;
        if (op == OP_INFO_KEY_VALUE) {
            m = M_EQUAL;
            if ((e = rd_data(r, &d2, &n2)) < 0)
                return e;
        } else if ((e = read_match(r, &m, &d2, &n2)) < 0) {
            return e;
        }
        plist_t dict = (plist_t)(op == OP_ENTITLEMENT_FIELD ? ctx->entitlements : ctx->info_plist);
        plist_t v = NULL;
        if (dict && plist_get_node_type(dict) == PLIST_DICT && !memchr(d, 0, n)) {
            char *k = strndup((const char *)d, n);
            if (!k)
                return sx_err(SYSEXT_ENOMEM, "out of memory");
            v = plist_dict_get_item(dict, k);
            free(k);
        }
        *res = (m >= M_ON && m <= M_ON_OR_AFTER) ? false : match_plist(m, v, d2, n2, 0);
        return 0;
    }
    case OP_CERT_FIELD: {
        if ((e = sx_rd_u32be(r, &u)) < 0 || (e = rd_data(r, &d, &n)) < 0 ||
            (e = read_match(r, &m, &d2, &n2)) < 0)
            return e;
        X509 *c = chain_cert(ctx, (int32_t)u);
        int nid = field_nid(d, n);
        *res = c && nid != NID_undef && !(m >= M_ON && m <= M_ON_OR_AFTER) &&
               cert_subject_match(c, nid, m, d2, n2);
        return 0;
    }
    case OP_CERT_GENERIC:
    case OP_CERT_POLICY:
    case OP_CERT_FIELD_DATE: {
        if ((e = sx_rd_u32be(r, &u)) < 0 || (e = rd_data(r, &d, &n)) < 0 ||
            (e = read_match(r, &m, &d2, &n2)) < 0)
            return e;
        X509 *c = chain_cert(ctx, (int32_t)u);
        bool present = false;
        if (c && op == OP_CERT_GENERIC)
            present = cert_ext_index(c, d, n) >= 0;
        else if (c && op == OP_CERT_POLICY)
            present = cert_has_policy(c, d, n);
        if (m == M_EXISTS)
            *res = present;
        else if (m == M_ABSENT)
            *res = c && !present;
        else if (c && op == OP_CERT_GENERIC && present && m <= M_GE) {
            ASN1_OCTET_STRING *val =
                X509_EXTENSION_get_data(X509_get_ext(c, cert_ext_index(c, d, n)));
            *res = match_string(m, (const char *)ASN1_STRING_get0_data(val),
                                (size_t)ASN1_STRING_length(val), d2, n2);
        } else
            *res = false;
        return 0;
    }
    case OP_NAMED_ANCHOR:
    case OP_NAMED_CODE:
        if ((e = rd_data(r, &d, &n)) < 0)
            return e;
        *res = false;
        return 0;
    case OP_PLATFORM:
        if ((e = sx_rd_u32be(r, &u)) < 0)
            return e;
        *res = false; /* no Apple platform binaries here */
        return 0;
    case OP_NOTARIZED:
        *res = ctx->notarized != 0;
        return 0;
    case OP_LEGACY_DEVID:
        *res = false;
        return 0;
    default:
        if (op & (OP_FLAG_GENERIC_FALSE | OP_FLAG_GENERIC_SKIP)) {
            if ((e = sx_rd_u32be(r, &u)) < 0 || (e = sx_rd_skip(r, u)) < 0)
                return e;
            *res = !(op & OP_FLAG_GENERIC_FALSE);
            return 0;
        }
        return sx_err(SYSEXT_EFORMAT, "requirement: unknown opcode %u at offset %zu", op, at);
    }
}

static int eval_expr(evaluator *ev, sx_reader *r, unsigned depth, bool *res)
{
    if (depth > REQ_MAX_DEPTH)
        return sx_err(SYSEXT_EFORMAT, "requirement: expression at offset %zu nested deeper than %d",
                      sx_reader_offset(r), REQ_MAX_DEPTH);
    size_t start = r->pos, at = sx_reader_offset(r);
    int had_failure = ev->failed;
    uint32_t op;
    int e = sx_rd_u32be(r, &op);
    if (e < 0)
        return e;
    bool a, b;
    switch (op) {
    case OP_AND:
    case OP_OR:
        /* Both sides are always read, so a malformed right side is never skipped. */
        if ((e = eval_expr(ev, r, depth + 1, &a)) < 0 || (e = eval_expr(ev, r, depth + 1, &b)) < 0)
            return e;
        *res = op == OP_AND ? (a && b) : (a || b);
        break;
    case OP_NOT:
        if ((e = eval_expr(ev, r, depth + 1, &a)) < 0)
            return e;
        *res = !a;
        break;
    default:
        if ((e = eval_leaf(ev, r, op, at, res)) < 0)
            return e;
        break;
    }
    if (*res && !had_failure)
        ev->failed = 0; /* whatever failed inside did not decide */
    else if (!*res && !ev->failed && op != OP_AND && op != OP_OR) {
        ev->failed = 1;
        ev->fail_at = start;
    }
    return 0;
}

int sx_req_evaluate(const uint8_t *blob, size_t len, const sx_req_context *ctx)
{
    SX_ASSERT_ARG(blob || len == 0);
    SX_ASSERT_ARG(ctx);
    sx_reader r;
    int e = req_open(blob, len, &r);
    if (e < 0)
        return e;
    evaluator ev = {.ctx = ctx, .whole = r};
    bool ok = false;
    if ((e = eval_expr(&ev, &r, 0, &ok)) < 0)
        return e;
    if (sx_reader_left(&r) != 0)
        return sx_err(SYSEXT_EFORMAT,
                      "requirement: %zu trailing bytes after the expression at "
                      "offset %zu",
                      sx_reader_left(&r), sx_reader_offset(&r));
    if (ok)
        return 0;
    sx_buf clause = SX_BUF_INIT;
    sx_reader pr = ev.whole;
    pr.pos = ev.failed ? ev.fail_at : 0;
    if (print_expr(&pr, &clause, SL_TOP, 0) < 0 || !clause.data) {
        sx_buf_free(&clause);
        return sx_err(SYSEXT_EINVALID, "requirement not satisfied");
    }
    e = sx_err(SYSEXT_EINVALID, "requirement not satisfied: %s", (const char *)clause.data);
    sx_buf_free(&clause);
    return e;
}
