/* ISC licence; see LICENSE. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "haul/imap.h"
#include "haul/str.h"

/*
 * Pure IMAP helpers, no state beyond their arguments: capabilities,
 * nz-numbers and UID sets, response codes to error classes, the choice
 * of mechanism, and the canonical rendering of a parsed response (for
 * traces and tests).
 */

unsigned
imap_cap_flag(const char *s, size_t len)
{
	static const struct {
		const char	*name;
		unsigned	 flag;
	} caps[] = {
		{ "IMAP4rev1", IMAP_CAP_IMAP4REV1 },
		{ "IMAP4rev2", IMAP_CAP_IMAP4REV2 },
		{ "STARTTLS", IMAP_CAP_STARTTLS },
		{ "LOGINDISABLED", IMAP_CAP_LOGINDISABLED },
		{ "SASL-IR", IMAP_CAP_SASL_IR },
		{ "LITERAL+", IMAP_CAP_LITERAL_PLUS },
		{ "LITERAL-", IMAP_CAP_LITERAL_MINUS },
		{ "IDLE", IMAP_CAP_IDLE },
		{ "UIDPLUS", IMAP_CAP_UIDPLUS },
		{ "MOVE", IMAP_CAP_MOVE },
		{ "ENABLE", IMAP_CAP_ENABLE },
		{ "AUTH=PLAIN", IMAP_CAP_AUTH_PLAIN },
		{ "AUTH=LOGIN", IMAP_CAP_AUTH_LOGIN },
		{ "AUTH=XOAUTH2", IMAP_CAP_AUTH_XOAUTH2 },
		{ "AUTH=OAUTHBEARER", IMAP_CAP_AUTH_OAUTHBEARER },
	};
	size_t	 i;

	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (str_ieq_n(s, len, caps[i].name))
			return caps[i].flag;
	return 0;
}

unsigned
imap_parse_caps(const char *s, size_t len)
{
	unsigned	 flags = 0;
	size_t		 i = 0, j;

	while (i < len) {
		while (i < len && s[i] == ' ')
			i++;
		for (j = i; j < len && s[j] != ' '; j++)
			;
		if (j > i)
			flags |= imap_cap_flag(s + i, j - i);
		i = j;
	}
	return flags;
}

int
imap_parse_nz32(const char *s, size_t len, uint32_t *v)
{
	uint64_t	 n;

	if (len == 0 || len > 10 || str_to_u64(s, len, IMAP_NUMBER_MAX,
	    &n) == -1 || n == 0)
		return -1;
	*v = (uint32_t)n;
	return 0;
}

long
imap_parse_uidset(const char *s, size_t len)
{
	size_t	 i = 0, j;
	long	 n = 0;
	uint32_t v;
	int	 range;

	if (len == 0)
		return -1;
	while (i < len) {
		for (range = 0; ; ) {
			for (j = i; j < len && s[j] >= '0' && s[j] <= '9'; j++)
				;
			if (imap_parse_nz32(s + i, j - i, &v) == -1)
				return -1;
			i = j;
			if (i < len && s[i] == ':' && !range) {
				range = 1;
				i++;
				continue;
			}
			break;
		}
		if (n == 1000000)
			return -1;
		n++;
		if (i == len)
			break;
		if (s[i] != ',' || i + 1 == len)
			return -1;
		i++;
	}
	return n;
}

int
imap_parse_uid_code(const char *code, size_t codelen, const char *arg,
    size_t arglen, uint32_t *uidvalidity)
{
	const char	*sp, *sp2;
	size_t		 rest;
	int		 copy;

	if (str_ieq_n(code, codelen, "APPENDUID"))
		copy = 0;
	else if (str_ieq_n(code, codelen, "COPYUID"))
		copy = 1;
	else
		return -1;
	if (arg == NULL || (sp = memchr(arg, ' ', arglen)) == NULL)
		return -1;
	if (imap_parse_nz32(arg, (size_t)(sp - arg), uidvalidity) == -1)
		return -1;
	sp++;
	rest = arglen - (size_t)(sp - arg);
	if (!copy)
		return imap_parse_uidset(sp, rest) == -1 ? -1 : 0;
	if ((sp2 = memchr(sp, ' ', rest)) == NULL)
		return -1;
	if (imap_parse_uidset(sp, (size_t)(sp2 - sp)) == -1)
		return -1;
	sp2++;
	return imap_parse_uidset(sp2, rest - (size_t)(sp2 - sp)) == -1 ?
	    -1 : 0;
}

enum err_class
imap_classify(const char *code, size_t len, int auth)
{
	static const char *authc[] = {
		"AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED",
		"CONTACTADMIN",
	};
	static const char *temp[] = {
		"UNAVAILABLE", "INUSE", "LIMIT", "SERVERBUG",
	};
	size_t	 i;

	if (code != NULL) {
		for (i = 0; i < sizeof(authc) / sizeof(authc[0]); i++)
			if (str_ieq_n(code, len, authc[i]))
				return ERR_AUTH;
		for (i = 0; i < sizeof(temp) / sizeof(temp[0]); i++)
			if (str_ieq_n(code, len, temp[i]))
				return ERR_TEMP;
		if (str_ieq_n(code, len, "PRIVACYREQUIRED"))
			return ERR_TLS;
	}
	return auth ? ERR_AUTH : ERR_PROTOCOL;
}

int
imap_choose_auth(enum auth_mech want, unsigned caps)
{
	switch (want) {
	case AUTH_AUTO:
		if (caps & IMAP_CAP_AUTH_PLAIN)
			return AUTH_PLAIN;
		if ((caps & IMAP_CAP_LOGINDISABLED) == 0)
			return AUTH_USER;
		return -1;
	case AUTH_USER:
		return (caps & IMAP_CAP_LOGINDISABLED) ? -1 : AUTH_USER;
	case AUTH_PLAIN:
		return (caps & IMAP_CAP_AUTH_PLAIN) ? AUTH_PLAIN : -1;
	case AUTH_LOGIN:
		return (caps & IMAP_CAP_AUTH_LOGIN) ? AUTH_LOGIN : -1;
	case AUTH_XOAUTH2:
		return (caps & IMAP_CAP_AUTH_XOAUTH2) ? AUTH_XOAUTH2 : -1;
	case AUTH_OAUTHBEARER:
		return (caps & IMAP_CAP_AUTH_OAUTHBEARER) ?
		    AUTH_OAUTHBEARER : -1;
	case AUTH_APOP:
		break;
	}
	return -1;
}

const char *
imap_sasl_name(enum auth_mech m)
{
	switch (m) {
	case AUTH_PLAIN:
		return "PLAIN";
	case AUTH_LOGIN:
		return "LOGIN";
	case AUTH_XOAUTH2:
		return "XOAUTH2";
	case AUTH_OAUTHBEARER:
		return "OAUTHBEARER";
	default:
		return "?";
	}
}

/* ---- rendering ---- */

struct wr {
	char	*d;
	size_t	 sz;
	size_t	 len;
	int	 full;
};

static void
wr_raw(struct wr *w, const char *s, size_t n)
{
	for (; n > 0 && !w->full; s++, n--) {
		if (w->len + 4 >= w->sz) {
			w->full = 1;
			break;
		}
		w->d[w->len++] = *s;
	}
}

/* Escaped: control and 8-bit octets as \xHH; in quotes also " and \. */
static void
wr_esc(struct wr *w, const char *s, size_t n, int quoted)
{
	static const char hex[] = "0123456789abcdef";
	size_t	 i;

	for (i = 0; i < n && !w->full; i++) {
		unsigned char c = (unsigned char)s[i];
		char	 e[4];

		if (c < 0x20 || c >= 0x7f) {
			e[0] = '\\';
			e[1] = 'x';
			e[2] = hex[c >> 4];
			e[3] = hex[c & 15];
			if (w->len + 4 + 4 >= w->sz)
				w->full = 1;
			else
				wr_raw(w, e, 4);
		} else if (quoted && (c == '"' || c == '\\')) {
			e[0] = '\\';
			e[1] = (char)c;
			wr_raw(w, e, 2);
		} else
			wr_raw(w, (const char *)&c, 1);
	}
}

static void
wr_str(struct wr *w, const char *s)
{
	wr_raw(w, s, strlen(s));
}

static void
render_arg(struct wr *w, const struct imap_response *r,
    const struct imap_arg *a)
{
	char	 num[40];

	switch (a->type) {
	case IMAP_ARG_ATOM:
		wr_esc(w, r->pool + a->off, a->len, 0);
		break;
	case IMAP_ARG_NIL:
		wr_str(w, "NIL");
		break;
	case IMAP_ARG_QUOTED:
	case IMAP_ARG_LITERAL:
		if (a->type == IMAP_ARG_LITERAL) {
			snprintf(num, sizeof(num), "%s{%llu}",
			    (a->flags & IMAP_ARGF_LITERAL8) ? "~" : "",
			    (unsigned long long)a->size);
			wr_str(w, num);
		}
		wr_str(w, "\"");
		wr_esc(w, r->pool + a->off, a->len, 1);
		wr_str(w, "\"");
		break;
	case IMAP_ARG_STREAMED:
		snprintf(num, sizeof(num), "%s{%llu}<streamed>",
		    (a->flags & IMAP_ARGF_LITERAL8) ? "~" : "",
		    (unsigned long long)a->size);
		wr_str(w, num);
		break;
	}
}

char *
imap_render(const struct imap_response *r, char *dst, size_t dstsz)
{
	const struct imap_arg	*stack[IMAP_DEPTH_LIMIT + 1], *a;
	struct wr		 w = { dst, dstsz, 0, 0 };
	unsigned		 depth = 0;
	int			 first = 0;
	char			 num[16];

	if (dstsz < 8) {
		if (dstsz > 0)
			dst[0] = '\0';
		return dst;
	}
	if (r->kind == IMAP_CONTINUE) {
		wr_str(&w, "+");
		if (r->text != NULL && r->textlen > 0) {
			wr_str(&w, " ");
			wr_esc(&w, r->text, r->textlen, 0);
		}
		goto out;
	}
	if (r->kind == IMAP_TAGGED)
		wr_esc(&w, r->tag, r->taglen, 0);
	else
		wr_str(&w, "*");
	if (r->has_num) {
		snprintf(num, sizeof(num), " %u", r->num);
		wr_str(&w, num);
	}
	wr_str(&w, " ");
	if (r->word != NULL)
		wr_esc(&w, r->word, r->wordlen, 0);
	if (r->cond != IMAP_COND_NONE) {
		if (r->code != NULL) {
			wr_str(&w, " [");
			wr_esc(&w, r->code, r->codelen, 0);
			if (r->code_arg != NULL) {
				wr_str(&w, " ");
				wr_esc(&w, r->code_arg, r->code_arglen, 0);
			}
			wr_str(&w, "]");
		}
		if (r->text != NULL && r->textlen > 0) {
			wr_str(&w, " ");
			wr_esc(&w, r->text, r->textlen, 0);
		}
		goto out;
	}
	/* The tree, walked with an explicit stack like it was built. */
	for (a = imap_arg_first(r); !w.full; ) {
		if (a == NULL) {
			if (depth == 0)
				break;
			wr_str(&w, ")");
			a = stack[--depth];
			first = 0;
			continue;
		}
		if (depth == 0 || !first)
			wr_str(&w, " ");
		first = 0;
		if (a->type == IMAP_ARG_LIST && depth < IMAP_DEPTH_LIMIT) {
			wr_str(&w, "(");
			stack[depth++] = imap_arg_next(r, a);
			a = imap_arg_child(r, a);
			first = 1;
			continue;
		}
		if (a->type == IMAP_ARG_LIST)
			wr_str(&w, "(...)");
		else
			render_arg(&w, r, a);
		a = imap_arg_next(r, a);
	}
out:
	if (w.full) {
		memcpy(w.d + w.len, "...", 3);
		w.len += 3;
	}
	w.d[w.len] = '\0';
	return dst;
}
