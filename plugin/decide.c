/* ISC licence; see LICENSE. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "haul/buf.h"
#include "haul/config.h"
#include "haul/milter_decide.h"
#include "haul/str.h"
#include "haul/token.h"
#include "haul/xmalloc.h"

/* The multidrop header fields we collect, in config's canonical spelling. */
enum { HOP_DELIVERED_TO, HOP_X_ORIGINAL_TO, HOP_ENVELOPE_TO, HOP_COUNT };
static const char *const hop_names[HOP_COUNT] = {
	"Delivered-To", "X-Original-To", "Envelope-To",
};

#define TRACE_FOLD_AT	900	/* fold the trace header past this length */
#define TRACE_CHUNK	64	/* mailbox characters per folded line */
#define ADDR_MAX	320	/* 64 + "@" + 253, with room */

/* All fields of one name (case-insensitive) that we remove. */
struct strip {
	char		*name;		/* as first seen, trailing blanks cut */
	unsigned	 count;
};

/* A recipient in the placeholder domain. */
struct place {
	char		*raw;		/* exactly as the MTA sent it */
	char		*local;
};

struct md_msg {
	char		*daemon_name;

	struct strip	*strip;
	size_t		 nstrip;
	int		 strip_overflow;

	unsigned	 ntokens;
	char		*token;		/* the first X-Haul-Token value */
	size_t		 token_len;
	int		 token_too_long;

	char		*hops[HOP_COUNT][MD_MAX_HOPS];	/* "" if unusable */
	unsigned	 nhops[HOP_COUNT];

	struct place	*place;
	size_t		 nplace;
	int		 place_overflow;
	unsigned	 nother;	/* other recipients: counted only */
};

static int
cmp_account(const void *a, const void *b)
{
	const struct config_account *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

void
md_policy_init(struct md_policy *p, const struct config *cf,
    const struct haul_key *keys, size_t nkeys)
{
	size_t	 i;

	memset(p, 0, sizeof(*p));
	p->cf = cf;
	p->keys = keys;
	p->nkeys = nkeys;
	p->byname = xcalloc(cf->naccounts + 1, sizeof(*p->byname));
	for (i = 0; i < cf->naccounts; i++)
		p->byname[i] = &cf->accounts[i];
	qsort(p->byname, cf->naccounts, sizeof(*p->byname), cmp_account);
}

void
md_policy_free(struct md_policy *p)
{
	free(p->byname);
	memset(p, 0, sizeof(*p));
}

const struct config_account *
md_find_account(const struct md_policy *p, const char *name)
{
	size_t	 lo = 0, hi = p->cf->naccounts, mid;
	int	 c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(name, p->byname[mid]->name);
		if (c == 0)
			return p->byname[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

struct md_msg *
md_msg_new(void)
{
	return xcalloc(1, sizeof(struct md_msg));
}

void
md_msg_reset(struct md_msg *m)
{
	size_t	 i, j;

	for (i = 0; i < m->nstrip; i++)
		free(m->strip[i].name);
	free(m->strip);
	free(m->token);
	for (i = 0; i < HOP_COUNT; i++)
		for (j = 0; j < m->nhops[i]; j++)
			free(m->hops[i][j]);
	for (i = 0; i < m->nplace; i++) {
		free(m->place[i].raw);
		free(m->place[i].local);
	}
	free(m->place);
	/* The listener belongs to the connection, not to the message. */
	{
		char	*dn = m->daemon_name;

		memset(m, 0, sizeof(*m));
		m->daemon_name = dn;
	}
}

void
md_msg_free(struct md_msg **mp)
{
	if (*mp == NULL)
		return;
	md_msg_reset(*mp);
	free((*mp)->daemon_name);
	xfree(mp);
}

void
md_set_daemon_name(struct md_msg *m, const char *name)
{
	free(m->daemon_name);
	m->daemon_name = name != NULL ? xstrdup(name) : NULL;
}

const char *
md_daemon_name(const struct md_msg *m)
{
	return m->daemon_name;
}

unsigned
md_strip_count(const struct md_msg *m)
{
	unsigned n = 0;
	size_t	 i;

	for (i = 0; i < m->nstrip; i++)
		n += m->strip[i].count;
	return n;
}

/* Length of name without trailing blanks (obsolete "Name :" syntax). */
static size_t
name_len(const char *name)
{
	size_t	 n = strlen(name);

	while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t'))
		n--;
	return n;
}

/* 1 if the domain s[0..n) is the placeholder domain (a final dot too). */
static int
is_placeholder_domain(const char *s, size_t n, const char *pd)
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	return str_ieq_n(s, n, pd);
}

void
md_add_rcpt(struct md_msg *m, const struct md_policy *p, const char *rcpt)
{
	const char	*s = rcpt, *at = NULL;
	size_t		 n = strlen(rcpt), i;

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s++;
		n -= 2;
	}
	for (i = 0; i < n; i++)
		if (s[i] == '@')
			at = s + i;
	if (at == NULL || !is_placeholder_domain(at + 1,
	    n - (size_t)(at + 1 - s), p->cf->delivery.placeholder_domain)) {
		m->nother++;
		return;
	}
	if (m->nplace == MD_MAX_PLACEHOLDERS) {
		m->place_overflow = 1;
		return;
	}
	m->place = xreallocarray(m->place, m->nplace + 1, sizeof(*m->place));
	m->place[m->nplace].raw = xstrdup(rcpt);
	m->place[m->nplace].local = xstrndup(s, (size_t)(at - s));
	m->nplace++;
}

/* Count one more field of a name we remove. */
static void
add_strip(struct md_msg *m, const char *name, size_t n)
{
	size_t	 i;

	for (i = 0; i < m->nstrip; i++) {
		if (str_ieq_n(name, n, m->strip[i].name)) {
			m->strip[i].count++;
			return;
		}
	}
	if (m->nstrip == MD_MAX_STRIP_NAMES) {
		m->strip_overflow = 1;
		return;
	}
	m->strip = xreallocarray(m->strip, m->nstrip + 1, sizeof(*m->strip));
	m->strip[m->nstrip].name = xstrndup(name, n);
	m->strip[m->nstrip].count = 1;
	m->nstrip++;
}

void
md_add_header(struct md_msg *m, const struct md_policy *p, const char *name,
    const char *value)
{
	const char	*trace = p->cf->milter.trace_header;
	size_t		 n = name_len(name), vlen, i;

	if (value == NULL)
		value = "";
	vlen = strlen(value);
	if (str_iprefix(name, n, MD_PREFIX) ||
	    (trace != NULL && str_ieq_n(name, n, trace)))
		add_strip(m, name, n);

	if (str_ieq_n(name, n, TOKEN_HEADER)) {
		if (m->ntokens++ == 0) {
			if (vlen > TOKEN_MAX_LEN)
				m->token_too_long = 1;
			else {
				m->token = xstrndup(value, vlen);
				m->token_len = vlen;
			}
		}
		return;
	}
	for (i = 0; i < HOP_COUNT; i++) {
		if (!str_ieq_n(name, n, hop_names[i]))
			continue;
		if (m->nhops[i] < MD_MAX_HOPS)
			m->hops[i][m->nhops[i]++] =
			    xstrdup(vlen > MD_VALUE_MAX ? "" : value);
		return;
	}
}

static int
is_ldh(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/*
 * Local-part characters we pass on: dot-atom text without '%' and '!'
 * (the MTA's percent hack and bang paths would turn "a%b@local" into a
 * relay to b) and without '/' and '|'.
 */
static int
is_local_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr(".-_+=#$&'*?^`{}~", c) != NULL;
}

static int
valid_local(const char *s, size_t n)
{
	size_t	 i;

	if (n == 0 || n > 64 || s[0] == '.' || s[n - 1] == '.')
		return 0;
	for (i = 0; i < n; i++) {
		if (!is_local_char((unsigned char)s[i]))
			return 0;
		if (s[i] == '.' && s[i + 1] == '.')
			return 0;
	}
	return 1;
}

static int
valid_domain(const char *s, size_t n)
{
	size_t	 i, label = 0;

	if (n == 0 || n > 253)
		return 0;
	for (i = 0; i < n; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!is_ldh((unsigned char)s[i]))
			return 0;
		if (label == 0 && s[i] == '-')
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

int
md_parse_addr(const char *value, char *dst, size_t dstsz)
{
	char	 tmp[MD_VALUE_MAX + 1];
	size_t	 n = 0, i, start, end, at;
	int	 found = 0;

	/* Unfold: a line break must be followed by a blank. */
	for (i = 0; value[i] != '\0'; i++) {
		if (value[i] == '\r' && value[i + 1] == '\n')
			i++;
		if (value[i] == '\r' || value[i] == '\n') {
			if (value[i + 1] != ' ' && value[i + 1] != '\t')
				return -1;
			continue;
		}
		if (n == sizeof(tmp) - 1)
			return -1;
		tmp[n++] = value[i];
	}
	tmp[n] = '\0';
	start = 0;
	end = n;
	while (start < end && (tmp[start] == ' ' || tmp[start] == '\t'))
		start++;
	while (end > start && (tmp[end - 1] == ' ' || tmp[end - 1] == '\t'))
		end--;
	if (end - start >= 2 && tmp[start] == '<' && tmp[end - 1] == '>') {
		start++;
		end--;
	}
	at = 0;
	for (i = start; i < end; i++) {
		if (tmp[i] == '@') {
			if (found)
				return -1;
			found = 1;
			at = i;
		}
	}
	if (!found || !valid_local(tmp + start, at - start) ||
	    !valid_domain(tmp + at + 1, end - at - 1))
		return -1;
	if (end - start + 1 > dstsz)
		return -1;
	memcpy(dst, tmp + start, end - start);
	dst[end - start] = '\0';
	return 0;
}

int
md_multidrop_rcpt(const struct config_account *a, const char *value,
    char *dst, size_t dstsz)
{
	char		 addr[ADDR_MAX];
	const char	*domain, *match = NULL;
	size_t		 i, llen;
	int		 n;

	if (value == NULL || md_parse_addr(value, addr, sizeof(addr)) == -1)
		return -1;
	domain = strrchr(addr, '@') + 1;
	llen = (size_t)(domain - 1 - addr);
	for (i = 0; a->multidrop_domains != NULL &&
	    a->multidrop_domains[i] != NULL; i++) {
		if (strcasecmp(a->multidrop_domains[i], domain) == 0) {
			match = a->multidrop_domains[i];
			break;
		}
	}
	if (match == NULL)
		return -1;
	if (a->multidrop_rewrite_domain != NULL)
		match = a->multidrop_rewrite_domain;
	n = snprintf(dst, dstsz, "%.*s@%s", (int)llen, addr, match);
	if (n < 0 || (size_t)n >= dstsz)
		return -1;
	return 0;
}

const char *
md_verdict_name(enum md_verdict v)
{
	switch (v) {
	case MD_ACCEPT:
		return "accept";
	case MD_REJECT:
		return "reject";
	case MD_ERROR:
		return "error";
	}
	return "?";
}

static void
add_act(struct md_result *r, enum md_act_kind kind, const char *name,
    int index, const char *value)
{
	struct md_action *a;

	if (r->nacts == r->capacts) {
		r->capacts = r->capacts ? r->capacts * 2 : 8;
		r->acts = xreallocarray(r->acts, r->capacts, sizeof(*r->acts));
	}
	a = &r->acts[r->nacts++];
	a->kind = kind;
	a->name = name != NULL ? xstrdup(name) : NULL;
	a->index = index;
	a->value = value != NULL ? xstrdup(value) : NULL;
}

void
md_result_free(struct md_result *r)
{
	size_t	 i;

	for (i = 0; i < r->nacts; i++) {
		free(r->acts[i].name);
		free(r->acts[i].value);
	}
	free(r->acts);
	r->acts = NULL;
	r->nacts = r->capacts = 0;
}

/* Keep reply text printable and free of '%' (libmilter formats it). */
static void
clean_text(char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '%')
			*s = '?';
}

static void __attribute__((format(printf, 5, 6)))
set_verdict(struct md_result *r, enum md_verdict v, const char *rcode,
    const char *xcode, const char *fmt, ...)
{
	va_list	 ap;

	r->verdict = v;
	str_lcpy(r->rcode, rcode, sizeof(r->rcode));
	str_lcpy(r->xcode, xcode, sizeof(r->xcode));
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	clean_text(r->reason);
	snprintf(r->summary, sizeof(r->summary), "%s", r->reason);
}

/* Every X-Haul-* (and trace) field, last first, so indexes stay valid. */
static void
add_strip_acts(struct md_result *r, const struct md_msg *m)
{
	size_t		 i;
	unsigned	 k;

	for (i = 0; i < m->nstrip; i++)
		for (k = m->strip[i].count; k > 0; k--)
			add_act(r, MD_ACT_DELHDR, m->strip[i].name, (int)k,
			    NULL);
}

/* The MTA's queue id if it looks like one, else "unknown". */
static const char *
clean_queue_id(const char *q)
{
	size_t	 i;

	if (q == NULL || q[0] == '\0')
		return "unknown";
	for (i = 0; q[i] != '\0'; i++) {
		if (i == MD_QUEUE_ID_MAX)
			return "unknown";
		if (!((q[i] >= 'a' && q[i] <= 'z') ||
		    (q[i] >= 'A' && q[i] <= 'Z') || (q[i] >= '0' && q[i] <= '9')))
			return "unknown";
	}
	return q;
}

/*
 * The trace header value.  Mailbox and uid use the token's percent
 * encoding, so the value is printable ASCII with no ';' inside a field
 * and "; queue-id=" appears once: a Sieve rule can cut the queue id off
 * and use the rest as the message's unique id.
 */
static char *
trace_value(const struct token_fields *f, const char *qid)
{
	struct buf	 b = BUF_INIT, mb = BUF_INIT, ub = BUF_INIT;
	const char	*mbox, *uid;
	size_t		 i, unit, line;

	token_pct_encode(&mb, f->mailbox, strlen(f->mailbox));
	token_pct_encode(&ub, f->uid, strlen(f->uid));
	mbox = mb.data != NULL ? mb.data : "";
	uid = ub.data != NULL ? ub.data : "";
	buf_addf(&b, "account=%s; mailbox=%s; uid=%u.%s; queue-id=%s",
	    f->account, mbox, (unsigned)f->uidvalidity, uid, qid);
	if (b.len > TRACE_FOLD_AT) {
		/* One field per line, the mailbox in pieces, never in a %XX. */
		buf_reset(&b);
		buf_addf(&b, "account=%s;\n\tmailbox=", f->account);
		for (i = 0, line = 0; i < mb.len; i += unit, line += unit) {
			unit = mbox[i] == '%' && i + 2 < mb.len ? 3 : 1;
			if (line >= TRACE_CHUNK) {
				buf_add_str(&b, "\n\t");
				line = 0;
			}
			buf_add(&b, mbox + i, unit);
		}
		buf_addf(&b, ";\n\tuid=%u.%s;\n\tqueue-id=%s",
		    (unsigned)f->uidvalidity, uid, qid);
	}
	buf_free(&mb);
	buf_free(&ub);
	return buf_steal(&b);
}

/* Which multidrop header the account reads; -1 if none we collect. */
static int
hop_index(const char *name)
{
	int	 i;

	for (i = 0; i < HOP_COUNT; i++)
		if (name != NULL && strcasecmp(name, hop_names[i]) == 0)
			return i;
	return -1;
}

/* The multidrop recipient: from the configured header, else the policy. */
static int
map_multidrop(struct md_result *r, const struct md_msg *m,
    const struct config_account *a, struct buf *list)
{
	char		 rcpt[ADDR_MAX + 2], addr[ADDR_MAX];
	const char	*value = NULL;
	int		 h;

	h = hop_index(a->multidrop_header);
	if (h != -1 && a->multidrop_hop >= 1 && a->multidrop_hop <= m->nhops[h])
		value = m->hops[h][a->multidrop_hop - 1];
	if (md_multidrop_rcpt(a, value, addr, sizeof(addr)) == -1) {
		if (a->multidrop_unknown != UNKNOWN_DEFAULT ||
		    a->multidrop_default == NULL) {
			set_verdict(r, MD_REJECT, "550", "5.1.1",
			    "no local recipient for account %s: %s %s",
			    a->name, a->multidrop_header != NULL ?
			    a->multidrop_header : "header", value == NULL ?
			    "missing at the configured hop" :
			    "is not an address in multidrop_domains");
			return -1;
		}
		str_lcpy(addr, a->multidrop_default, sizeof(addr));
	}
	snprintf(rcpt, sizeof(rcpt), "<%s>", addr);
	add_act(r, MD_ACT_ADDRCPT, NULL, 0, rcpt);
	buf_add_str(list, addr);
	return 0;
}

/*
 * The recipients that replace the placeholder.  Returns 0, or -1 after
 * setting a reject or error verdict.
 */
static int
map_rcpts(struct md_result *r, const struct md_msg *m,
    const struct config_account *a, struct buf *list)
{
	char		 rcpt[ADDR_MAX + 2];
	size_t		 i;

	if (a->multidrop)
		return map_multidrop(r, m, a, list);
	if (a->deliver_to == NULL || a->deliver_to[0] == NULL) {
		set_verdict(r, MD_ERROR, "451", "4.3.0",
		    "account %s has no deliver_to", a->name);
		return -1;
	}
	for (i = 0; a->deliver_to[i] != NULL; i++) {
		snprintf(rcpt, sizeof(rcpt), "<%s>", a->deliver_to[i]);
		add_act(r, MD_ACT_ADDRCPT, NULL, 0, rcpt);
		buf_addf(list, "%s%s", i ? "," : "", a->deliver_to[i]);
	}
	return 0;
}

/* The checks for a message that carries a token; 0 if it is trusted. */
static int
check_token(const struct md_policy *p, const struct md_msg *m, time_t now,
    struct md_result *r, struct token_fields *f,
    const struct config_account **ap)
{
	const struct config_milter *mc = &p->cf->milter;
	const char	*why = NULL;
	size_t		 i;

	if (m->ntokens > 1) {
		set_verdict(r, MD_REJECT, "550", "5.7.1",
		    "X-Haul-Token rejected: %u copies (exactly one allowed)",
		    m->ntokens);
		return -1;
	}
	if (mc->daemon_name != NULL) {
		if (m->daemon_name == NULL) {
			set_verdict(r, MD_ERROR, "451", "4.3.0",
			    "the MTA did not send {daemon_name}: cannot tell "
			    "the fetch listener");
			return -1;
		}
		if (strcmp(m->daemon_name, mc->daemon_name) != 0) {
			set_verdict(r, MD_REJECT, "550", "5.7.1",
			    "X-Haul-Token rejected: not accepted on this "
			    "listener");
			return -1;
		}
	}
	if (m->token_too_long || m->token == NULL)
		why = "malformed";
	else if (token_verify(p->keys, p->nkeys, m->token, m->token_len, now,
	    mc->token_max_age, f, &why) == 0)
		why = NULL;
	if (why != NULL) {
		set_verdict(r, MD_REJECT, "550", "5.7.1",
		    "X-Haul-Token rejected: %s", why);
		return -1;
	}
	if ((*ap = md_find_account(p, f->account)) == NULL) {
		set_verdict(r, MD_REJECT, "550", "5.7.1",
		    "X-Haul-Token rejected: unknown account %s", f->account);
		return -1;
	}
	for (i = 0; i < m->nplace; i++) {
		if (strcmp(m->place[i].local, f->account) != 0) {
			set_verdict(r, MD_REJECT, "550", "5.7.1",
			    "placeholder recipient does not match the "
			    "X-Haul-Token account %s", f->account);
			return -1;
		}
	}
	return 0;
}

void
md_decide(const struct md_policy *p, const struct md_msg *m, time_t now,
    const char *queue_id, struct md_result *r)
{
	const struct config_account *a = NULL;
	struct token_fields	 f;
	struct buf		 list = BUF_INIT;
	const char		*qid = clean_queue_id(queue_id);
	char			*tv;
	size_t			 i;

	memset(r, 0, sizeof(*r));
	r->verdict = MD_ACCEPT;
	buf_init(&list, 4096);

	if (m->strip_overflow) {
		set_verdict(r, MD_REJECT, "550", "5.7.1", "more than %d "
		    "distinct X-Haul-* header field names", MD_MAX_STRIP_NAMES);
		goto out;
	}
	if (m->place_overflow) {
		set_verdict(r, MD_REJECT, "550", "5.7.1", "more than %d "
		    "placeholder recipients", MD_MAX_PLACEHOLDERS);
		goto out;
	}
	if (m->ntokens == 0) {
		if (m->nplace > 0) {
			/* Nothing may reach the placeholder unverified. */
			set_verdict(r, MD_REJECT, "550", "5.7.1",
			    "placeholder recipient without an X-Haul-Token");
			goto out;
		}
		add_strip_acts(r, m);
		snprintf(r->summary, sizeof(r->summary), "no token; removed "
		    "%u X-Haul-* field(s)", md_strip_count(m));
		goto out;
	}
	if (check_token(p, m, now, r, &f, &a) == -1) {
		if (r->verdict == MD_ERROR)
			add_strip_acts(r, m);
		goto out;
	}
	str_lcpy(r->account, f.account, sizeof(r->account));

	add_strip_acts(r, m);
	if (m->nplace > 0) {
		if (map_rcpts(r, m, a, &list) == -1) {
			/* Keep only the removals (on_error = accept). */
			md_result_free(r);
			if (r->verdict == MD_ERROR)
				add_strip_acts(r, m);
			goto out;
		}
		for (i = 0; i < m->nplace; i++)
			add_act(r, MD_ACT_DELRCPT, NULL, 0, m->place[i].raw);
	}
	add_act(r, MD_ACT_ADDHDR, MD_ACCOUNT_HEADER, 0, f.account);
	tv = trace_value(&f, qid);
	add_act(r, MD_ACT_ADDHDR, p->cf->milter.trace_header != NULL ?
	    p->cf->milter.trace_header : "X-Haul-Trace", 0, tv);
	free(tv);
	snprintf(r->summary, sizeof(r->summary), "accepted: uid %u.%.80s "
	    "mailbox %.100s, %s%s, removed %u X-Haul-* field(s)",
	    (unsigned)f.uidvalidity, f.uid, f.mailbox,
	    m->nplace > 0 ? "to " : "recipients unchanged",
	    m->nplace > 0 && list.data != NULL ? list.data : "",
	    md_strip_count(m));
out:
	buf_free(&list);
}
