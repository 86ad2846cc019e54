/* The lexer: identifiers, numbers, strings/chars, punctuation ('::' as one token), comments
 * skipped, and preprocessor lines kept whole as directives. */
#include "iig.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void iig_error(const struct iig_src *src, const struct iig_tok *t, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d:%d: error: ", src->path, t ? t->line : 1, t ? t->col : 1);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static bool push(struct iig_src *s, enum iig_tok_kind k, size_t start, size_t end, int line, int col)
{
    if (s->ntoks == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 256;
        struct iig_tok *n = realloc(s->toks, ncap * sizeof(*n));
        if (!n)
            return false;
        s->toks = n;
        s->cap = ncap;
    }
    char *text = strndup(s->text + start, end - start);
    if (!text)
        return false;
    s->toks[s->ntoks++] = (struct iig_tok){ k, text, start, line, col };
    return true;
}

bool iig_lex(struct iig_src *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    s->path = path;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: error: cannot open: %s\n", path, strerror(errno));
        return false;
    }
    size_t cap = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (s->len + n + 1 > cap) {
            size_t ncap = (s->len + n + 1) * 2;
            char *t = realloc(s->text, ncap);
            if (!t) {
                fclose(f);
                return false;
            }
            s->text = t;
            cap = ncap;
        }
        memcpy(s->text + s->len, chunk, n);
        s->len += n;
    }
    fclose(f);
    if (!s->text && !(s->text = calloc(1, 1)))
        return false;
    s->text[s->len] = 0;
    return iig_lex_buffer(s);
}

bool iig_lex_buffer(struct iig_src *s)
{
    const char *p = s->text;
    size_t i = 0, len = s->len;
    int line = 1;
    size_t lineStart = 0;
    bool atLineStart = true;
#define COL ((int)(i - lineStart) + 1)
    while (i < len) {
        char c = p[i];
        if (c == '\n') {
            i++;
            line++;
            lineStart = i;
            atLineStart = true;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            i++;
            continue;
        }
        if (c == '/' && i + 1 < len && p[i + 1] == '/') {
            while (i < len && p[i] != '\n')
                i++;
            continue;
        }
        if (c == '/' && i + 1 < len && p[i + 1] == '*') {
            struct iig_tok at = { TOK_PUNCT, NULL, i, line, COL };
            i += 2;
            while (i + 1 < len && !(p[i] == '*' && p[i + 1] == '/')) {
                if (p[i] == '\n') {
                    line++;
                    lineStart = i + 1;
                }
                i++;
            }
            if (i + 1 >= len) {
                iig_error(s, &at, "unterminated comment");
                return false;
            }
            i += 2;
            continue;
        }
        if (c == '#' && atLineStart) {
            int col = COL;
            size_t start = ++i;
            while (i < len && p[i] != '\n') {
                if (p[i] == '\\' && i + 1 < len && p[i + 1] == '\n') {
                    i += 2;
                    line++;
                    lineStart = i;
                    continue;
                }
                i++;
            }
            if (!push(s, TOK_DIRECTIVE, start, i, line, col))
                return false;
            continue;
        }
        atLineStart = false;
        int col = COL;
        size_t start = i;
        if (isalpha((unsigned char)c) || c == '_') {
            while (i < len && (isalnum((unsigned char)p[i]) || p[i] == '_'))
                i++;
            if (!push(s, TOK_IDENT, start, i, line, col))
                return false;
        } else if (isdigit((unsigned char)c)) {
            while (i < len && (isalnum((unsigned char)p[i]) || p[i] == '.'))
                i++;
            if (!push(s, TOK_NUMBER, start, i, line, col))
                return false;
        } else if (c == '"' || c == '\'') {
            i++;
            while (i < len && p[i] != c && p[i] != '\n') {
                if (p[i] == '\\' && i + 1 < len)
                    i++;
                i++;
            }
            if (i >= len || p[i] != c) {
                struct iig_tok at = { TOK_STRING, NULL, start, line, col };
                iig_error(s, &at, "unterminated %s literal", c == '"' ? "string" : "character");
                return false;
            }
            i++;
            if (!push(s, TOK_STRING, start, i, line, col))
                return false;
        } else if (c == ':' && i + 1 < len && p[i + 1] == ':') {
            i += 2;
            if (!push(s, TOK_PUNCT, start, i, line, col))
                return false;
        } else if (c != 0 && strchr("{}()[];:,*&<>=+-|~!/%^.?", c)) {
            i++;
            if (!push(s, TOK_PUNCT, start, i, line, col))
                return false;
        } else {
            struct iig_tok at = { TOK_PUNCT, NULL, start, line, col };
            if (isprint((unsigned char)c))
                iig_error(s, &at, "unexpected character '%c'", c);
            else
                iig_error(s, &at, "unexpected byte 0x%02x", (unsigned char)c);
            return false;
        }
    }
#undef COL
    if (!push(s, TOK_EOF, len, len, line, (int)(len - lineStart) + 1))
        return false;
    s->toks[s->ntoks - 1].offset = len;
    return true;
}

void iig_src_free(struct iig_src *s)
{
    for (size_t i = 0; i < s->ntoks; i++)
        free(s->toks[i].text);
    free(s->toks);
    free(s->text);
    memset(s, 0, sizeof(*s));
}

uint64_t iig_fnv1a64(const char *str)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}
