/* Shared fixture for the sign/verify/display tests: a dev CA, identities for two teams, and
 * an app embedding a dext and a system extension, all in a scratch directory. */
#ifndef SX_TEST_SIGNFIXTURE_H
#define SX_TEST_SIGNFIXTURE_H

#include <stdbool.h>

#include "codesign/verify_internal.h"

extern char sx_fx_dir[];

void sx_fx_setup(void);
void sx_fx_teardown(void);
/* Path inside the scratch dir (static buffer rotation: valid for a few calls). */
const char *sx_fx_path(const char *rel);
void sx_fx_write(const char *rel, const char *content, int mode);
void sx_fx_ents(const char *rel, const char *const *true_keys);
/* Build the three bundles (unsigned): Sensor.dext, Filter.systemextension, Host.app embedding
 * copies of both. */
void sx_fx_make_bundles(void);
/* Sign with the team A identity (or B), entitlements file rel or NULL. Returns sysext_sign's rc. */
int sx_fx_sign(const char *bundle_rel, const char *identity, const char *ents_rel);
/* Sign the dext and sysext with their entitlements, copy them into the app, sign the app. */
void sx_fx_sign_all(const char *ext_identity);
/* Verify strict+deep with the CA root as anchor; fills the report. Returns the rc. */
int sx_fx_verify(const char *rel, sx_report *report);
bool sx_fx_report_has(const sx_report *r, const char *code, const char *path_suffix);
void sx_fx_dump(const sx_report *r);

#endif
