/* Everything the daemon asks of the bundle and codesign subsystems goes through here, so the
 * daemon's trust decisions sit in one place. */
#ifndef SXD_VERIFY_H
#define SXD_VERIFY_H

#include <plist/plist.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum sxd_kind { SXD_KIND_UNKNOWN = 0, SXD_KIND_APP, SXD_KIND_DEXT, SXD_KIND_SYSEXT } sxd_kind;

typedef struct sxd_code {
    char *path;
    sxd_kind kind;
    /* From Info.plist (NULL when absent). */
    char *identifier, *executable, *version, *short_version, *name;
    char *exe_path; /* the main executable's path */
    plist_t info;   /* owned */
    /* From the signature (after sxd_verify_code). */
    bool sig_checked;
    bool sig_valid;            /* valid apart from entitlement rules */
    bool ents_ok;              /* the codesign entitlement rules for its kind hold */
    bool adhoc, developer_id;
    char *team_id;             /* NULL for ad-hoc / unsigned */
    char cdhash[41];           /* hex, "" when none */
    plist_t entitlements;      /* owned; NULL when none */
    char *problems;            /* text of every problem found, NULL when none */
} sxd_code;

/* Open a bundle and read its Info.plist. */
int sxd_code_open(const char *path, sxd_code *c);
/* Verify the signature (strict; deep when `deep`) against the trust anchors and fill the
 * signature fields. Returns 0 when it could be checked (look at sig_valid / ents_ok), <0 on
 * hard errors. */
int sxd_code_verify(sxd_code *c, const char *const *trust, size_t n_trust, bool deep);
void sxd_code_clear(sxd_code *c);

/* A boolean entitlement (true only for a boolean true). */
bool sxd_ent_true(plist_t ents, const char *key);
/* A string value of Info.plist, NULL when absent. */
const char *sxd_info_str(const sxd_code *c, const char *key);

/* Notarization: does `c` (already verified) carry a valid stapled ticket? Tickets come with
 * issue 4: until then no ticket is ever valid, so Developer ID code is refused whenever the
 * daemon runs with --notary-cert. */
/* A valid notarization ticket from `notary_cert` covers the code's cdhash: stapled to the code
 * or to the app that carries it (`app` may be NULL). */
bool sxd_ticket_valid(const sxd_code *c, const sxd_code *app, const char *notary_cert);

#endif
