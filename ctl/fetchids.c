/* ISC licence; see LICENSE. */
/*
 * fetchmail's ~/.fetchids, read as fetchmail 6.4's uid.c reads it:
 * "remote@queryname UID" per line.  See haul/fetchmailrc.h.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "haul/fetchmailrc.h"
#include "haul/xmalloc.h"

static int
blank(char c)
{
	return c == ' ' || c == '\t';
}

/* One line (without its newline); 0 if it was a record. */
static int
parse_line(const char *s, size_t len, unsigned line, struct fmids *out)
{
	const char	*end = s + len, *tok, *tokend, *at, *id, *idend;

	while (s < end && blank(*s))
		s++;
	/* the user part may hold blanks (Lotus Notes): find an '@' first */
	if ((at = memchr(s, '@', (size_t)(end - s))) == NULL)
		return -1;
	for (tokend = at; tokend < end && *tokend != ' '; tokend++)
		;
	if (tokend >= end)
		return -1;
	tok = s;
	id = tokend;
	while (id < end && *id == ' ')
		id++;
	for (idend = id; idend < end && !blank(*idend) && *idend != '\r';
	    idend++)
		;
	if (idend == id)
		return -1;
	/* user@host splits at the last '@' of the token */
	for (at = tokend - 1; at > tok && *at != '@'; at--)
		;
	if (*at != '@' || at == tok || at + 1 == tokend)
		return -1;
	out->v = xreallocarray(out->v, out->n + 1, sizeof(*out->v));
	out->v[out->n].user = xstrndup(tok, (size_t)(at - tok));
	out->v[out->n].host = xstrndup(at + 1, (size_t)(tokend - at - 1));
	out->v[out->n].uid = xstrndup(id, (size_t)(idend - id));
	out->v[out->n].line = line;
	out->n++;
	return 0;
}

void
fmids_parse(const char *text, size_t len, struct fmids *out)
{
	const char	*p = text, *end = text + len, *nl;
	unsigned	 line = 0;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		line++;
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		if (nl > p && memchr(p, '\0', (size_t)(nl - p)) == NULL &&
		    parse_line(p, (size_t)(nl - p), line, out) == 0) {
			/* a record */
		} else if (nl > p) {
			if (out->bad++ == 0)
				out->first_bad = line;
		}
		p = nl + 1;
	}
}

void
fmids_free(struct fmids *ids)
{
	size_t	 i;

	for (i = 0; i < ids->n; i++) {
		free(ids->v[i].user);
		free(ids->v[i].host);
		free(ids->v[i].uid);
	}
	free(ids->v);
	memset(ids, 0, sizeof(*ids));
}

size_t
fmids_each(const struct fmids *ids, const char *user, const char *host,
    void (*cb)(const struct fmids_rec *, void *), void *arg)
{
	size_t	 i, n = 0;

	for (i = 0; i < ids->n; i++) {
		if (strcasecmp(ids->v[i].user, user) != 0 ||
		    strcasecmp(ids->v[i].host, host) != 0)
			continue;
		if (cb != NULL)
			cb(&ids->v[i], arg);
		n++;
	}
	return n;
}
