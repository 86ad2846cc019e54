/* A list of diagnostics: every problem a check finds (not just the first), each with its
 * severity, a stable code, the file it is about, the key path inside it, and a message.
 * validate, verify and the notary log all report through this. */
#ifndef SX_REPORT_H
#define SX_REPORT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/error.h"

typedef enum sx_severity { SX_SEV_ERROR = 0, SX_SEV_WARNING = 1, SX_SEV_NOTE = 2 } sx_severity;

typedef struct sx_diag {
    sx_severity sev;
    char *code;    /* stable, kebab-case: "missing-key", "wrong-type", "hash-mismatch" */
    char *path;    /* file relative to the subject, e.g. "Contents/Info.plist"; may be NULL */
    char *key;     /* key path inside it, e.g. "IOKitPersonalities.Sensor.IOClass"; may be NULL */
    char *message; /* one line, no trailing period */
} sx_diag;

typedef struct sx_report {
    sx_diag *v;
    size_t n, cap;
    bool oom; /* an add failed for lack of memory: the report is incomplete */
} sx_report;

void sx_report_init(sx_report *r);
void sx_report_free(sx_report *r);
/* Never fails from the caller's point of view; out of memory sets r->oom. */
void sx_report_add(sx_report *r, sx_severity sev, const char *code, const char *path,
                   const char *key, const char *fmt, ...) SX_PRINTF(6, 7);
size_t sx_report_count(const sx_report *r, sx_severity sev);
bool sx_report_has(const sx_report *r, const char *code);
/* "error: Contents/Info.plist: CFBundleVersion: expected ..., got ... [wrong-type]" lines. */
int sx_report_render_text(const sx_report *r, sx_buf *out);
/* A JSON array of {"severity","code","path","key","message"}; new reference. */
json_object *sx_report_to_json(const sx_report *r);
const char *sx_severity_name(sx_severity sev);

#endif
