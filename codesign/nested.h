/* Reading the signature of nested code and of embedded extensions: where a bundle keeps its
 * _CodeSignature, its best cdhash and its designated requirement as text. */
#ifndef SX_CS_NESTED_H
#define SX_CS_NESTED_H

#include <stdint.h>

#include "codesign/seal.h"
#include "codesign/sigfiles.h"

/* The _CodeSignature folder of a bundle: <b>/Contents/_CodeSignature, or <b>/_CodeSignature
 * for a flat bundle (no Contents/). Newly allocated. */
char *sx_sigdir_of(const char *bundle_path);
/* Load the signature of nested code at `path`: a bundle folder or a Mach-O file. */
int sx_nested_load(const char *path, sx_sigfiles *out);
/* The designated requirement as text: the stored one, else (ad-hoc) the implicit
 * `cdhash H"..."` or-chain over every CD. */
int sx_designated_text(const sx_sigfiles *s, sx_buf *out);
/* sx_nested_fn for sx_seal_build: cdhash of the best CD + designated requirement text. */
int sx_nested_info_of(const char *path, sx_nested_info *out, void *payload);

#endif
