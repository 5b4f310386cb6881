/* ISC licence; see LICENSE. */
#ifndef HAUL_MILTER_SHIM_H
#define HAUL_MILTER_SHIM_H

#include <libmilter/mfapi.h>

/*
 * Every per-connection libmilter call haul-milter makes goes through one
 * of these pointers, so the callbacks can be driven by a test backend
 * that records what they ask for (OpenDKIM style) instead of a real MTA.
 * The functions have libmilter's contracts: strings are borrowed for the
 * call only, and the int ones return MI_SUCCESS or MI_FAILURE.
 */
struct milter_shim {
	char	*(*getsymval)(SMFICTX *, const char *name);
	int	 (*setpriv)(SMFICTX *, void *);
	void	*(*getpriv)(SMFICTX *);
	int	 (*setsymlist)(SMFICTX *, int stage, const char *macros);
	int	 (*setreply)(SMFICTX *, const char *rcode, const char *xcode,
		     const char *text);
	int	 (*addheader)(SMFICTX *, const char *name, const char *value);
	/* value NULL deletes the index-th field called name (1-based). */
	int	 (*chgheader)(SMFICTX *, const char *name, int index,
		     const char *value);
	int	 (*addrcpt)(SMFICTX *, const char *rcpt);
	int	 (*delrcpt)(SMFICTX *, const char *rcpt);
};

/* The real thing: thin wrappers around smfi_*. */
extern const struct milter_shim milter_shim_libmilter;

#endif
