#include "util/common.h"
#include "util/report.h"

void sx_report_init(sx_report *r)
{
    memset(r, 0, sizeof(*r));
}

void sx_report_free(sx_report *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].code);
        free(r->v[i].path);
        free(r->v[i].key);
        free(r->v[i].message);
    }
    free(r->v);
    memset(r, 0, sizeof(*r));
}

const char *sx_severity_name(sx_severity sev)
{
    switch (sev) {
    case SX_SEV_ERROR:
        return "error";
    case SX_SEV_WARNING:
        return "warning";
    default:
        return "note";
    }
}

void sx_report_add(sx_report *r, sx_severity sev, const char *code, const char *path,
                   const char *key, const char *fmt, ...)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        sx_diag *v = reallocarray(r->v, cap, sizeof(*v));
        if (!v) {
            r->oom = true;
            return;
        }
        r->v = v;
        r->cap = cap;
    }
    sx_diag *d = &r->v[r->n];
    memset(d, 0, sizeof(*d));
    d->sev = sev;
    va_list ap;
    va_start(ap, fmt);
    int k = vasprintf(&d->message, fmt, ap);
    va_end(ap);
    d->code = strdup(code ? code : "error");
    d->path = path ? strdup(path) : NULL;
    d->key = key ? strdup(key) : NULL;
    if (k < 0 || !d->code || (path && !d->path) || (key && !d->key)) {
        if (k < 0)
            d->message = NULL;
        free(d->message);
        free(d->code);
        free(d->path);
        free(d->key);
        r->oom = true;
        return;
    }
    r->n++;
}

size_t sx_report_count(const sx_report *r, sx_severity sev)
{
    size_t c = 0;
    for (size_t i = 0; i < r->n; i++)
        c += r->v[i].sev == sev;
    return c;
}

bool sx_report_has(const sx_report *r, const char *code)
{
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].code, code))
            return true;
    return false;
}

int sx_report_render_text(const sx_report *r, sx_buf *out)
{
    int e = 0;
    for (size_t i = 0; i < r->n && e == 0; i++) {
        const sx_diag *d = &r->v[i];
        e = sx_buf_printf(out, "%s: %s%s%s%s%s [%s]\n", sx_severity_name(d->sev),
                          d->path ? d->path : "", d->path ? ": " : "", d->key ? d->key : "",
                          d->key ? ": " : "", d->message, d->code);
    }
    if (e == 0 && r->oom)
        e = sx_buf_puts(out, "error: out of memory: this report is incomplete\n");
    return e;
}

json_object *sx_report_to_json(const sx_report *r)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; a && i < r->n; i++) {
        const sx_diag *d = &r->v[i];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "severity", json_object_new_string(sx_severity_name(d->sev)));
        json_object_object_add(o, "code", json_object_new_string(d->code));
        json_object_object_add(o, "path", d->path ? json_object_new_string(d->path) : NULL);
        json_object_object_add(o, "key", d->key ? json_object_new_string(d->key) : NULL);
        json_object_object_add(o, "message", json_object_new_string(d->message));
        json_object_array_add(a, o);
    }
    return a;
}
