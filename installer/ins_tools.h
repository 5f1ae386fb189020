/* Tools a bundle carries (tools/...): today the portable ferry-install
 * (docs/portable.md). Nothing from the bundle is ever run: its version is
 * read from the member's verified bytes (the FERRY_VERSION= marker,
 * cm_version.h). */
#ifndef INS_TOOLS_H
#define INS_TOOLS_H

#include <stddef.h>

#include "cm_error.h"
#include "cm_version.h"
#include "ins_install_bundle.h"

#define INS_TOOL_INSTALLER "tools/ferry-install-linux-amd64"

/* The installer member, or NULL when the bundle carries none. */
const ins_member *ins_tools_installer(const ins_bundle *b);

/* Its version, read through a hashing cursor: CM_EVERIFY when the member
 * does not match SHA256SUMS; out = "" when it holds no marker. */
int ins_tools_version(char out[CM_VERSION_MAX], const ins_bundle *b, const ins_member *m,
		      cm_error *err);

#endif
