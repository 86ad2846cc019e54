/* sysext-iig: the DriverKit interface compiler. Internal interfaces between the lexer, the
 * parser and the C generator. */
#ifndef SYSEXT_IIG_H
#define SYSEXT_IIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <errno.h>

#pragma GCC poison strcpy strcat sprintf vsprintf gets stpcpy

enum iig_tok_kind { TOK_EOF, TOK_IDENT, TOK_NUMBER, TOK_STRING, TOK_PUNCT, TOK_DIRECTIVE };

struct iig_tok {
    enum iig_tok_kind kind;
    char *text;     /* owned, NUL-terminated (a directive: the whole line after '#') */
    size_t offset;  /* byte offset in the source */
    int line, col;
};

struct iig_src {
    const char *path;
    char *text;
    size_t len;
    struct iig_tok *toks;
    size_t ntoks, cap;
};

/* Read and tokenise a file; on error print FILE:LINE:COL: error: ... and return false. */
bool iig_lex(struct iig_src *src, const char *path);
/* Tokenise s->text (s->len bytes, NUL-terminated); s->path names it in errors. */
bool iig_lex_buffer(struct iig_src *src);
void iig_src_free(struct iig_src *src);
void iig_error(const struct iig_src *src, const struct iig_tok *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

enum iig_param_kind {
    P_SCALAR,     /* integer-like: U64 on the wire */
    P_STRING,     /* const char *: STRING */
    P_OBJECT,     /* Class *: OBJECT */
    P_BYTES,      /* struct / typedef by value or fixed array: BYTES of sizeof */
    P_SCALAR_OUT, /* integer *: U64 in the reply */
};

struct iig_param {
    char *type;  /* C type text, e.g. "uint64_t", "IOService *", "char" for an array */
    char *name;
    char *array; /* "[128]" or NULL */
    char *cls;   /* P_OBJECT: the class name; P_SCALAR_OUT: the pointee type */
    enum iig_param_kind kind;
    char *typeAttr; /* TYPE(...) on an OSAction parameter, "Class_Method" or NULL */
    const char *why; /* why it cannot be marshalled (an error unless the method is LOCALONLY) */
    size_t whyTok;
};

struct iig_method {
    char *ret;  /* "kern_return_t", "void", "bool" */
    char *name;
    struct iig_param *params;
    size_t nparams;
    bool override, kernel, local, localonly;
    bool localOverride; /* an override whose parameters cannot cross: a table entry, no IPC stub */
    char *queue;    /* QUEUENAME / QUEUE name or NULL */
    char *typeOf;   /* TYPE(Class::Method) as "Class_Method" or NULL */
    const struct iig_tok *at;
};

struct iig_class {
    char *name, *super;
    bool kernel, local;
    struct iig_method *methods;
    size_t nmethods;
};

enum iig_item_kind { ITEM_INCLUDE, ITEM_DEFINE, ITEM_RAW, ITEM_CLASS };

struct iig_item {
    enum iig_item_kind kind;
    char *text;         /* include target (with <> or ""), define line, or raw C text */
    char *typedefName;  /* ITEM_RAW: emit "typedef struct|enum NAME NAME;" after it */
    bool isEnum;
    struct iig_class *cls;
};

struct iig_unit {
    struct iig_item *items;
    size_t nitems;
    char **structs, **enums; /* names declared in the file */
    size_t nstructs, nenums;
};

bool iig_parse(const struct iig_src *src, struct iig_unit *unit);
void iig_unit_free(struct iig_unit *unit);
/* Write the header and the implementation; `headerName` is what the impl #includes. */
bool iig_generate(const struct iig_unit *unit, const char *srcPath, const char *headerName, FILE *h, FILE *c);

uint64_t iig_fnv1a64(const char *s);

#endif
