/* ISC licence; see LICENSE. */
#include <libmilter/mfapi.h>

#include "haul/milter_shim.h"

/*
 * libmilter predates const: it takes char * everywhere but does not
 * write through these pointers, so casting const away is safe here and
 * only here.
 */

static char *
lm_getsymval(SMFICTX *ctx, const char *name)
{
	return smfi_getsymval(ctx, (char *)name);
}

static int
lm_setpriv(SMFICTX *ctx, void *p)
{
	return smfi_setpriv(ctx, p);
}

static void *
lm_getpriv(SMFICTX *ctx)
{
	return smfi_getpriv(ctx);
}

static int
lm_setsymlist(SMFICTX *ctx, int stage, const char *macros)
{
	return smfi_setsymlist(ctx, stage, (char *)macros);
}

static int
lm_setreply(SMFICTX *ctx, const char *rcode, const char *xcode,
    const char *text)
{
	return smfi_setreply(ctx, (char *)rcode, (char *)xcode, (char *)text);
}

static int
lm_addheader(SMFICTX *ctx, const char *name, const char *value)
{
	return smfi_addheader(ctx, (char *)name, (char *)value);
}

static int
lm_chgheader(SMFICTX *ctx, const char *name, int index, const char *value)
{
	return smfi_chgheader(ctx, (char *)name, index, (char *)value);
}

static int
lm_addrcpt(SMFICTX *ctx, const char *rcpt)
{
	return smfi_addrcpt(ctx, (char *)rcpt);
}

static int
lm_delrcpt(SMFICTX *ctx, const char *rcpt)
{
	return smfi_delrcpt(ctx, (char *)rcpt);
}

const struct milter_shim milter_shim_libmilter = {
	.getsymval = lm_getsymval,
	.setpriv = lm_setpriv,
	.getpriv = lm_getpriv,
	.setsymlist = lm_setsymlist,
	.setreply = lm_setreply,
	.addheader = lm_addheader,
	.chgheader = lm_chgheader,
	.addrcpt = lm_addrcpt,
	.delrcpt = lm_delrcpt,
};
