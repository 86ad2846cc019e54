/* Recursive-descent parser for the DriverKit class-declaration syntax (.iig). */
#include "iig.h"

#include <stdlib.h>
#include <string.h>

struct P {
    const struct iig_src *src;
    struct iig_unit *u;
    size_t i;
};

static const struct iig_tok *peek(struct P *p)
{
    return &p->src->toks[p->i];
}
static const struct iig_tok *peekn(struct P *p, size_t n)
{
    size_t k = p->i + n;
    return k < p->src->ntoks ? &p->src->toks[k] : &p->src->toks[p->src->ntoks - 1];
}
static const struct iig_tok *next(struct P *p)
{
    const struct iig_tok *t = peek(p);
    if (t->kind != TOK_EOF)
        p->i++;
    return t;
}
static bool is(const struct iig_tok *t, const char *text)
{
    return t->kind != TOK_EOF && t->kind != TOK_DIRECTIVE && strcmp(t->text, text) == 0;
}
static const char *desc(const struct iig_tok *t)
{
    return t->kind == TOK_EOF ? "end of file" : t->text;
}
static bool expect(struct P *p, const char *text)
{
    const struct iig_tok *t = peek(p);
    if (!is(t, text)) {
        iig_error(p->src, t, "expected '%s', found '%s'", text, desc(t));
        return false;
    }
    next(p);
    return true;
}
static const struct iig_tok *expect_ident(struct P *p, const char *what)
{
    const struct iig_tok *t = peek(p);
    if (t->kind != TOK_IDENT) {
        iig_error(p->src, t, "expected %s, found '%s'", what, desc(t));
        return NULL;
    }
    return next(p);
}

static bool grow(void **arr, size_t *n, size_t size)
{
    void *a = realloc(*arr, (*n + 1) * size);
    if (!a)
        return false;
    memset((char *)a + *n * size, 0, size);
    *arr = a;
    (*n)++;
    return true;
}

static struct iig_item *add_item(struct P *p, enum iig_item_kind k, char *text)
{
    if (!text || !grow((void **)&p->u->items, &p->u->nitems, sizeof(struct iig_item))) {
        free(text);
        fprintf(stderr, "%s: error: out of memory\n", p->src->path);
        return NULL;
    }
    struct iig_item *it = &p->u->items[p->u->nitems - 1];
    it->kind = k;
    it->text = text;
    return it;
}

static bool add_name(char ***arr, size_t *n, const char *name)
{
    char *s = strdup(name);
    if (!s || !grow((void **)arr, n, sizeof(char *))) {
        free(s);
        return false;
    }
    (*arr)[*n - 1] = s;
    return true;
}

static bool in_list(char **arr, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(arr[i], name) == 0)
            return true;
    return false;
}

/* Raw source text from token `from` through the ';' that ends the declaration at depth 0. */
static bool raw_decl(struct P *p, size_t from, char **out)
{
    int depth = 0;
    for (;;) {
        const struct iig_tok *t = peek(p);
        if (t->kind == TOK_EOF) {
            iig_error(p->src, &p->src->toks[from], "declaration not terminated by ';'");
            return false;
        }
        if (t->kind == TOK_DIRECTIVE) {
            iig_error(p->src, t, "preprocessor line inside a declaration");
            return false;
        }
        next(p);
        if (is(t, "{") || is(t, "(") || is(t, "["))
            depth++;
        else if (is(t, "}") || is(t, ")") || is(t, "]")) {
            if (--depth < 0) {
                iig_error(p->src, t, "unbalanced '%s'", t->text);
                return false;
            }
        } else if (is(t, ";") && depth == 0) {
            size_t start = p->src->toks[from].offset;
            size_t end = t->offset + 1;
            *out = strndup(p->src->text + start, end - start);
            return *out != NULL;
        }
    }
}

static bool parse_directive(struct P *p)
{
    const struct iig_tok *t = next(p);
    const char *s = t->text;
    while (*s == ' ' || *s == '\t')
        s++;
    if (strncmp(s, "include", 7) == 0) {
        s += 7;
        while (*s == ' ' || *s == '\t')
            s++;
        size_t n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
            n--;
        if (n < 3 || !((s[0] == '<' && s[n - 1] == '>') || (s[0] == '"' && s[n - 1] == '"'))) {
            iig_error(p->src, t, "malformed #include (expected <file> or \"file\")");
            return false;
        }
        return add_item(p, ITEM_INCLUDE, strndup(s, n)) != NULL;
    }
    size_t n = strlen(t->text);
    char *line = malloc(n + 2);
    if (!line)
        return false;
    line[0] = '#';
    memcpy(line + 1, t->text, n + 1);
    return add_item(p, ITEM_DEFINE, line) != NULL;
}

static const char *const scalar_names[] = {
    "bool",         "char",          "short",      "int",         "long",           "signed",
    "unsigned",     "int8_t",        "int16_t",    "int32_t",     "int64_t",        "uint8_t",
    "uint16_t",     "uint32_t",      "uint64_t",   "size_t",      "ssize_t",        "off_t",
    "uintptr_t",    "intptr_t",      "kern_return_t", "IOReturn", "IOOptionBits",   "uint",
    "mach_vm_address_t", "mach_vm_size_t", "IOVirtualAddress", "IOPhysicalAddress", "IOByteCount",
};

static bool is_scalar_word(const struct iig_unit *u, const char *w)
{
    for (size_t i = 0; i < sizeof(scalar_names) / sizeof(scalar_names[0]); i++)
        if (strcmp(scalar_names[i], w) == 0)
            return true;
    return in_list(u->enums, u->nenums, w);
}

/* Join tokens [a, b) into C type text: "const char *", "IOService *". */
static char *join(const struct iig_src *src, size_t a, size_t b)
{
    size_t cap = 1;
    for (size_t i = a; i < b; i++)
        cap += strlen(src->toks[i].text) + 1;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = 0;
    for (size_t i = a; i < b; i++) {
        const char *t = src->toks[i].text;
        if (n > 0 && !(strcmp(t, "*") == 0 && s[n - 1] == '*'))
            s[n++] = ' ';
        size_t l = strlen(t);
        memcpy(s + n, t, l);
        n += l;
    }
    s[n] = 0;
    return s;
}

/* Parse an attribute at the cursor into the method or param; false with no error if the
 * token is not an attribute (*matched = false). */
static bool parse_type_attr(struct P *p, char **out)
{
    next(p); /* TYPE */
    if (!expect(p, "("))
        return false;
    const struct iig_tok *c = expect_ident(p, "a class name in TYPE(Class::Method)");
    if (!c || !expect(p, "::"))
        return false;
    const struct iig_tok *m = expect_ident(p, "a method name in TYPE(Class::Method)");
    if (!m || !expect(p, ")"))
        return false;
    free(*out);
    if (asprintf(out, "%s_%s", c->text, m->text) < 0) {
        *out = NULL;
        return false;
    }
    return true;
}

static bool parse_param(struct P *p, struct iig_method *m, size_t start, size_t end)
{
    const struct iig_src *src = p->src;
    if (!grow((void **)&m->params, &m->nparams, sizeof(struct iig_param)))
        return false;
    struct iig_param *pa = &m->params[m->nparams - 1];
    /* trailing attributes: TYPE(C::M), TARGET */
    size_t e = end;
    for (size_t k = start; k < end; k++) {
        if (is(&src->toks[k], "TYPE") || is(&src->toks[k], "TARGET")) {
            if (e == end)
                e = k;
            if (is(&src->toks[k], "TYPE")) {
                size_t save = p->i;
                p->i = k;
                if (!parse_type_attr(p, &pa->typeAttr))
                    return false;
                k = p->i - 1;
                p->i = save;
            }
        }
    }
    size_t nameIdx;
    if (e > start && is(&src->toks[e - 1], "]")) {
        if (e < start + 4 || !is(&src->toks[e - 3], "[") || src->toks[e - 2].kind != TOK_NUMBER) {
            iig_error(src, &src->toks[e - 1], "expected a fixed array size '[N]'");
            return false;
        }
        if (asprintf(&pa->array, "[%s]", src->toks[e - 2].text) < 0) {
            pa->array = NULL;
            return false;
        }
        nameIdx = e - 4;
    } else {
        if (e == start) {
            iig_error(src, &src->toks[start], "expected a parameter");
            return false;
        }
        nameIdx = e - 1;
    }
    const struct iig_tok *nt = &src->toks[nameIdx];
    if (nt->kind != TOK_IDENT || nameIdx == start) {
        iig_error(src, nt, "expected a parameter type and name, found '%s'", nt->text);
        return false;
    }
    pa->name = strdup(nt->text);
    pa->type = join(src, start, nameIdx);
    if (!pa->name || !pa->type)
        return false;
    /* classify */
    int stars = 0;
    bool isConst = false, isStruct = false, allScalar = true;
    const char *base = NULL;
    for (size_t k = start; k < nameIdx; k++) {
        const struct iig_tok *t = &src->toks[k];
        if (is(t, "*"))
            stars++;
        else if (is(t, "const"))
            isConst = true;
        else if (is(t, "struct"))
            isStruct = true;
        else if (is(t, "enum"))
            continue; /* the enum's name follows */
        else if (t->kind == TOK_IDENT) {
            if (stars) {
                iig_error(src, t, "unexpected '%s' after '*' in a parameter type", t->text);
                return false;
            }
            base = t->text;
            if (!is_scalar_word(p->u, t->text))
                allScalar = false;
        } else {
            iig_error(src, t, "unexpected '%s' in a parameter type", t->text);
            return false;
        }
    }
    if (!base) {
        iig_error(src, &src->toks[start], "parameter '%s' has no type", pa->name);
        return false;
    }
    const char *why = NULL;
    if (stars == 0) {
        pa->kind = (allScalar && !pa->array && !isStruct) ? P_SCALAR : P_BYTES;
    } else if (stars == 1 && !pa->array) {
        if (strcmp(base, "char") == 0 && isConst)
            pa->kind = P_STRING;
        else if (allScalar && !isConst)
            pa->kind = P_SCALAR_OUT;
        else if (allScalar || strcmp(base, "void") == 0 || isStruct ||
                 in_list(p->u->structs, p->u->nstructs, base))
            why = "pointer to data";
        else
            pa->kind = P_OBJECT;
        pa->cls = strdup(base);
        if (!pa->cls)
            return false;
    } else {
        why = "pointer to pointer or array of pointers";
    }
    if (why) { /* reported unless the method turns out LOCALONLY */
        pa->why = why;
        pa->whyTok = start;
    }
    return true;
}

static bool parse_method_attr(struct P *p, struct iig_method *m, bool *matched)
{
    const struct iig_tok *t = peek(p);
    *matched = true;
    if (is(t, "override"))
        m->override = true;
    else if (is(t, "KERNEL"))
        m->kernel = true;
    else if (is(t, "LOCAL"))
        m->local = true;
    else if (is(t, "LOCALONLY"))
        m->localonly = true;
    else if (is(t, "TYPE"))
        return parse_type_attr(p, &m->typeOf);
    else if (is(t, "QUEUENAME") || is(t, "QUEUE")) {
        next(p);
        if (!expect(p, "("))
            return false;
        const struct iig_tok *q = expect_ident(p, "a queue name");
        if (!q || !expect(p, ")"))
            return false;
        free(m->queue);
        m->queue = strdup(q->text);
        return m->queue != NULL;
    } else {
        *matched = false;
        return true;
    }
    next(p);
    return true;
}

static void method_free(struct iig_method *m)
{
    for (size_t i = 0; i < m->nparams; i++) {
        free(m->params[i].type);
        free(m->params[i].name);
        free(m->params[i].array);
        free(m->params[i].cls);
        free(m->params[i].typeAttr);
    }
    free(m->params);
    free(m->ret);
    free(m->name);
    free(m->queue);
    free(m->typeOf);
}

static bool parse_method(struct P *p, struct iig_class *c)
{
    if (!grow((void **)&c->methods, &c->nmethods, sizeof(struct iig_method)))
        return false;
    struct iig_method *m = &c->methods[c->nmethods - 1];
    if (is(peek(p), "virtual"))
        next(p);
    bool matched = true;
    while (matched)
        if (!parse_method_attr(p, m, &matched))
            return false;
    /* return type tokens up to the name before '(' */
    size_t start = p->i;
    while (peek(p)->kind == TOK_IDENT || is(peek(p), "*")) {
        if (is(peekn(p, 1), "("))
            break;
        next(p);
    }
    const struct iig_tok *name = peek(p);
    if (name->kind != TOK_IDENT || !is(peekn(p, 1), "(")) {
        iig_error(p->src, name, "expected a method declaration 'type Name(params)', found '%s'", desc(name));
        return false;
    }
    if (p->i == start) {
        iig_error(p->src, name, "method '%s' has no return type", name->text);
        return false;
    }
    m->at = name;
    m->ret = join(p->src, start, p->i);
    m->name = strdup(name->text);
    if (!m->ret || !m->name)
        return false;
    next(p);
    next(p); /* ( */
    /* parameters: split at ',' on depth 0 */
    size_t pstart = p->i;
    int depth = 0;
    if (is(peek(p), "void") && is(peekn(p, 1), ")")) {
        next(p);
        pstart = p->i;
    }
    for (;;) {
        const struct iig_tok *t = peek(p);
        if (t->kind == TOK_EOF || t->kind == TOK_DIRECTIVE || is(t, ";") || is(t, "{")) {
            iig_error(p->src, t, "expected ')' to end the parameters of '%s'", m->name);
            return false;
        }
        if (is(t, "("))
            depth++;
        if ((is(t, ",") || is(t, ")")) && depth == 0) {
            bool last = is(t, ")");
            if (p->i > pstart || !last || m->nparams > 0) {
                if (!parse_param(p, m, pstart, p->i))
                    return false;
            }
            next(p);
            pstart = p->i;
            if (last)
                break;
            continue;
        }
        if (is(t, ")"))
            depth--;
        next(p);
    }
    matched = true;
    while (matched)
        if (!parse_method_attr(p, m, &matched))
            return false;
    if (is(peek(p), "=")) {
        iig_error(p->src, peek(p), "pure virtual methods ('= 0') are not supported");
        return false;
    }
    if (!expect(p, ";"))
        return false;
    if (m->localonly && (m->kernel || m->queue || m->typeOf)) {
        iig_error(p->src, m->at, "'%s': LOCALONLY cannot be combined with KERNEL, QUEUENAME or TYPE", m->name);
        return false;
    }
    bool isLifecycle = strcmp(m->name, "init") == 0 || strcmp(m->name, "free") == 0;
    if (isLifecycle) {
        if (m->nparams != 0 || strcmp(m->ret, strcmp(m->name, "init") == 0 ? "bool" : "void") != 0) {
            iig_error(p->src, m->at, "'%s' must be declared '%s %s()'", m->name,
                      strcmp(m->name, "init") == 0 ? "bool" : "void", m->name);
            return false;
        }
    } else if (!m->localonly && strcmp(m->ret, "kern_return_t") != 0 && strcmp(m->ret, "IOReturn") != 0 &&
               strcmp(m->ret, "void") != 0) {
        iig_error(p->src, m->at, "'%s' returns '%s': a method that can be called remotely returns kern_return_t "
                  "or void (or mark it LOCALONLY)", m->name, m->ret);
        return false;
    }
    /* An override of a base method whose parameters cannot cross (IOService::NewUserClient,
     * IOUserClient::ExternalMethod, CopyClientMemoryForType: LOCALONLY or LOCAL in DriverKit)
     * runs in this process only: it replaces the base's entry and gets no IPC stub. */
    for (size_t i = 0; m->override && !m->localonly && i < m->nparams; i++)
        if (m->params[i].why && !m->kernel && !m->queue && !m->typeOf) {
            m->localonly = m->localOverride = true;
            break;
        }
    for (size_t i = 0; !m->localonly && i < m->nparams; i++) {
        const struct iig_param *pa = &m->params[i];
        if (pa->why) {
            iig_error(p->src, &p->src->toks[pa->whyTok],
                      "parameter '%s': type '%s' (%s) cannot cross the IPC boundary; pass a struct by value, "
                      "an object, or mark the method LOCALONLY", pa->name, pa->type, pa->why);
            return false;
        }
    }
    for (size_t i = 0; i + 1 < c->nmethods; i++)
        if (strcmp(c->methods[i].name, m->name) == 0) {
            iig_error(p->src, m->at, "method '%s' declared twice (overloading is not supported)", m->name);
            return false;
        }
    return true;
}

static bool parse_class(struct P *p)
{
    const struct iig_tok *kw = next(p); /* class */
    struct iig_class *c = calloc(1, sizeof(*c));
    struct iig_item *it = c ? add_item(p, ITEM_CLASS, strdup("")) : NULL;
    if (!it) {
        free(c);
        return false;
    }
    it->cls = c;
    const struct iig_tok *name = NULL;
    while (peek(p)->kind == TOK_IDENT && !is(peekn(p, 1), ":") && !is(peekn(p, 1), "{")) {
        const struct iig_tok *a = next(p);
        if (is(a, "KERNEL"))
            c->kernel = true;
        else if (is(a, "LOCAL"))
            c->local = true;
        else {
            iig_error(p->src, a, "unknown class attribute '%s' (expected KERNEL or LOCAL)", a->text);
            return false;
        }
    }
    if (!(name = expect_ident(p, "a class name")))
        return false;
    c->name = strdup(name->text);
    if (!c->name)
        return false;
    if (!is(peek(p), ":")) {
        iig_error(p->src, peek(p), "class '%s' needs a superclass (': public Super')", c->name);
        return false;
    }
    next(p);
    if (!expect(p, "public"))
        return false;
    const struct iig_tok *sup = expect_ident(p, "a superclass name");
    if (!sup || !expect(p, "{"))
        return false;
    c->super = strdup(sup->text);
    if (!c->super)
        return false;
    (void)kw;
    for (;;) {
        const struct iig_tok *t = peek(p);
        if (is(t, "}"))
            break;
        if (t->kind == TOK_EOF) {
            iig_error(p->src, kw, "class '%s' is not closed by '};'", c->name);
            return false;
        }
        if (t->kind == TOK_DIRECTIVE) {
            iig_error(p->src, t, "preprocessor lines inside a class are not supported");
            return false;
        }
        if ((is(t, "public") || is(t, "protected") || is(t, "private")) && is(peekn(p, 1), ":")) {
            next(p);
            next(p);
            continue;
        }
        if (is(t, "struct") && peekn(p, 1)->kind == TOK_IDENT && is(peekn(p, 2), ";")) {
            /* ivars forward declaration: the header always declares struct Class_IVars */
            next(p);
            next(p);
            next(p);
            continue;
        }
        if (is(t, ";")) {
            next(p);
            continue;
        }
        if (!parse_method(p, c))
            return false;
    }
    next(p); /* } */
    return expect(p, ";");
}

bool iig_parse(const struct iig_src *src, struct iig_unit *u)
{
    memset(u, 0, sizeof(*u));
    struct P p = { src, u, 0 };
    for (;;) {
        const struct iig_tok *t = peek(&p);
        if (t->kind == TOK_EOF)
            return true;
        if (t->kind == TOK_DIRECTIVE) {
            if (!parse_directive(&p))
                return false;
        } else if (is(t, ";")) {
            next(&p);
        } else if (is(t, "class")) {
            if (!parse_class(&p))
                return false;
        } else if (is(t, "struct") || is(t, "enum")) {
            bool isEnum = is(t, "enum");
            size_t from = p.i;
            next(&p);
            const struct iig_tok *n = peek(&p);
            const char *name = n->kind == TOK_IDENT ? n->text : NULL;
            if (name)
                next(&p);
            if (isEnum && is(peek(&p), ":")) {
                iig_error(src, peek(&p), "an enum with a fixed underlying type is not valid C; drop ': type'");
                return false;
            }
            if (!name && !isEnum) {
                iig_error(src, n, "expected a struct name, found '%s'", desc(n));
                return false;
            }
            bool fwd = is(peek(&p), ";");
            if (!fwd && !is(peek(&p), "{")) {
                iig_error(src, peek(&p), "expected '{' or ';' after '%s %s'", t->text, name ? name : "");
                return false;
            }
            char *raw = NULL;
            if (!raw_decl(&p, from, &raw))
                return false;
            struct iig_item *it = add_item(&p, ITEM_RAW, raw);
            if (!it)
                return false;
            if (name) {
                it->isEnum = isEnum;
                it->typedefName = strdup(name);
                if (!it->typedefName ||
                    !(isEnum ? add_name(&u->enums, &u->nenums, name) : add_name(&u->structs, &u->nstructs, name)))
                    return false;
                if (fwd && isEnum) {
                    iig_error(src, t, "forward-declared enums are not valid C");
                    return false;
                }
            }
        } else if (is(t, "typedef")) {
            size_t from = p.i;
            char *raw = NULL;
            if (!raw_decl(&p, from, &raw) || !add_item(&p, ITEM_RAW, raw))
                return false;
            /* a scalar typedef name becomes a scalar for classification */
            const struct iig_tok *last = &src->toks[p.i - 2];
            bool scalar = true;
            for (size_t k = from + 1; k < p.i - 2; k++)
                if (src->toks[k].kind != TOK_IDENT || !is_scalar_word(u, src->toks[k].text))
                    scalar = false;
            if (scalar && last->kind == TOK_IDENT && !add_name(&u->enums, &u->nenums, last->text))
                return false;
        } else {
            iig_error(src, t, "expected 'class', 'struct', 'enum', 'typedef' or a preprocessor line, found '%s'",
                      desc(t));
            return false;
        }
    }
}

void iig_unit_free(struct iig_unit *u)
{
    for (size_t i = 0; i < u->nitems; i++) {
        struct iig_item *it = &u->items[i];
        free(it->text);
        free(it->typedefName);
        if (it->cls) {
            for (size_t k = 0; k < it->cls->nmethods; k++)
                method_free(&it->cls->methods[k]);
            free(it->cls->methods);
            free(it->cls->name);
            free(it->cls->super);
            free(it->cls);
        }
    }
    free(u->items);
    for (size_t i = 0; i < u->nstructs; i++)
        free(u->structs[i]);
    for (size_t i = 0; i < u->nenums; i++)
        free(u->enums[i]);
    free(u->structs);
    free(u->enums);
    memset(u, 0, sizeof(*u));
}
