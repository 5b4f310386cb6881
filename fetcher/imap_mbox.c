/* ISC licence; see LICENSE. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haul/imap.h"
#include "haul/log.h"
#include "haul/str.h"
#include "haul/xmalloc.h"

#include "imap_int.h"

/*
 * The IMAP client's view of the selected mailbox: the sequence-number
 * map, the listing, FETCH responses and body streaming (the parser's
 * literal hook), EXISTS/EXPUNGE, response codes, and the LIST and STATUS
 * data.  What is sent and when lives in imap_ops.c.
 */

/* 1 while a mailbox is selected and its data means something. */
static int
mailbox_open(const struct imap *p)
{
	return p->state == IMAP_SELECTED || p->state == IMAP_IDLE_START ||
	    p->state == IMAP_IDLING || p->state == IMAP_IDLE_DONE;
}

/* ---- the sequence map ---- */

/* Index of the first entry with seq >= s. */
static size_t
map_find(const struct imap *p, uint32_t s)
{
	size_t	 lo = 0, hi = p->nmap;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->map[mid].seq < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void
imap_map_clear(struct imap *p)
{
	p->nmap = 0;
	p->map_ok = 1;
}

static void
map_set(struct imap *p, uint32_t s, uint32_t uid)
{
	size_t	 i = map_find(p, s);

	if (i < p->nmap && p->map[i].seq == s) {
		p->map[i].uid = uid;
		return;
	}
	if (p->nmap >= p->max_messages)
		return;		/* only FETCHes without UID lose from this */
	if (p->nmap == p->mapcap) {
		p->mapcap = p->mapcap == 0 ? 64 : p->mapcap * 2;
		p->map = xreallocarray(p->map, p->mapcap, sizeof(*p->map));
	}
	memmove(&p->map[i + 1], &p->map[i], (p->nmap - i) * sizeof(*p->map));
	p->map[i].seq = s;
	p->map[i].uid = uid;
	p->nmap++;
}

/* The UID of message s if known, else 0. */
static uint32_t
map_uid(const struct imap *p, uint32_t s)
{
	size_t	 i;

	if (!p->map_ok)
		return 0;
	i = map_find(p, s);
	return i < p->nmap && p->map[i].seq == s ? p->map[i].uid : 0;
}

/* Message s is gone: later messages move down by one (RFC 9051 7.5.1). */
static void
map_expunge(struct imap *p, uint32_t s)
{
	size_t	 i = map_find(p, s), j;

	if (i < p->nmap && p->map[i].seq == s) {
		memmove(&p->map[i], &p->map[i + 1],
		    (p->nmap - i - 1) * sizeof(*p->map));
		p->nmap--;
	}
	for (j = i; j < p->nmap; j++)
		p->map[j].seq--;
}

/* ---- the listing ---- */

static void
cand_add(struct imap *p, uint32_t uid, uint64_t size)
{
	if (p->ncand >= p->max_messages) {
		/* Keep the round exact below the lowest UID left out. */
		if (p->drop_min == 0 || uid < p->drop_min)
			p->drop_min = uid;
		return;
	}
	if (p->ncand == p->candcap) {
		p->candcap = p->candcap == 0 ? 64 : p->candcap * 2;
		p->cands = xreallocarray(p->cands, p->candcap,
		    sizeof(*p->cands));
	}
	p->cands[p->ncand].uid = uid;
	p->cands[p->ncand].size = size;
	p->ncand++;
}

static int
cand_cmp(const void *a, const void *b)
{
	uint32_t	 x = ((const struct cand *)a)->uid;
	uint32_t	 y = ((const struct cand *)b)->uid;

	return x < y ? -1 : x > y;
}

/* Sort by UID, drop repeats and everything from the first UID left out. */
void
imap_cand_finish(struct imap *p)
{
	size_t	 i, o = 0;

	if (p->ncand > 1)
		qsort(p->cands, p->ncand, sizeof(*p->cands), cand_cmp);
	for (i = 0; i < p->ncand; i++) {
		if (o > 0 && p->cands[o - 1].uid == p->cands[i].uid)
			continue;
		if (p->drop_min != 0 && p->cands[i].uid >= p->drop_min)
			break;
		p->cands[o++] = p->cands[i];
	}
	p->ncand = o;
	if (p->drop_min != 0)
		log_notice(p->account, "imap: more than %u new messages; this "
		    "round stops below UID %u", p->max_messages, p->drop_min);
	p->listed = 1;
	p->next = 0;
}

/* ---- FETCH responses ---- */

struct fetch_items {
	int			 has_uid;
	uint32_t		 uid;
	int			 has_flags;
	int			 seen;		/* FLAGS holds \Seen */
	int			 has_size;
	uint64_t		 size;
	const struct imap_arg	*body;		/* the value of BODY[] */
};

/*
 * The items of "* n FETCH (name value ...)".  Only UID, RFC822.SIZE,
 * FLAGS (for \Seen) and BODY[] matter; the rest is skipped whole.
 * Returns 0, or -1.
 */
static int
fetch_items(const struct imap_response *r, struct fetch_items *fi)
{
	const struct imap_arg	*l = imap_arg_first(r), *n, *v, *f;
	uint64_t		 x;

	memset(fi, 0, sizeof(*fi));
	if (l == NULL || l->type != IMAP_ARG_LIST || imap_arg_next(r, l))
		return -1;
	for (n = imap_arg_child(r, l); n != NULL; n = imap_arg_next(r, v)) {
		if ((v = imap_arg_next(r, n)) == NULL ||
		    n->type != IMAP_ARG_ATOM)
			return -1;
		if (imap_arg_is(r, n, "UID")) {
			if (imap_arg_number(r, v, IMAP_NUMBER_MAX, &x) == -1 ||
			    x == 0 || (fi->has_uid && fi->uid != x))
				return -1;
			fi->has_uid = 1;
			fi->uid = (uint32_t)x;
		} else if (imap_arg_is(r, n, "RFC822.SIZE")) {
			if (imap_arg_number(r, v, IMAP_NUMBER64_MAX, &x) == -1)
				return -1;
			fi->has_size = 1;
			fi->size = x;
		} else if (imap_arg_is(r, n, "BODY[]")) {
			if (fi->body != NULL)
				return -1;
			fi->body = v;
		} else if (imap_arg_is(r, n, "FLAGS") &&
		    v->type == IMAP_ARG_LIST) {
			fi->has_flags = 1;
			for (f = imap_arg_child(r, v); f != NULL;
			    f = imap_arg_next(r, f))
				if (imap_arg_is(r, f, "\\Seen"))
					fi->seen = 1;
		}
	}
	return 0;
}

/* The UID item of a FETCH response read so far (up to stop), or 0. */
static uint32_t
uid_so_far(const struct imap_response *r, const struct imap_arg *stop)
{
	const struct imap_arg	*l = imap_arg_first(r), *n, *v;
	uint64_t		 x;

	if (l == NULL || l->type != IMAP_ARG_LIST)
		return 0;
	for (n = imap_arg_child(r, l); n != NULL && n != stop;
	    n = imap_arg_next(r, v)) {
		if ((v = imap_arg_next(r, n)) == NULL || v == stop)
			return 0;
		if (imap_arg_is(r, n, "UID") &&
		    imap_arg_number(r, v, IMAP_NUMBER_MAX, &x) == 0)
			return (uint32_t)x;
	}
	return 0;
}

/* Items whose literal is message data: streamed, never buffered. */
static int
message_item(const char *s, size_t len)
{
	return str_iprefix(s, len, "BODY[") || str_iprefix(s, len,
	    "BINARY[") || str_ieq_n(s, len, "RFC822") || str_ieq_n(s, len,
	    "RFC822.HEADER") || str_ieq_n(s, len, "RFC822.TEXT");
}

int
imap_msg_failed(struct imap *p, uint32_t uid, enum imap_fail why,
    const char *text)
{
	log_warnx(p->account, "imap: UID %u not fetched: %s", uid, text);
	if (p->cb.msg_failed != NULL &&
	    p->cb.msg_failed(p->arg, uid, why, text) == -1) {
		imap_owner_fail(p, "imap_msg_failed");
		return -1;
	}
	return 0;
}

/*
 * The parser's literal hook.  Message data in a FETCH response streams:
 * to the owner when it is the BODY[] of a UID we asked for and have not
 * had yet (attributed by the UID item if it came first, else by the
 * sequence map), otherwise it is read and dropped (M20: never
 * mis-attributed).  Anything above max_message_size fails before a byte
 * of it is read (M11).  Other literals (names, envelope strings) are
 * buffered under the parser's cap.
 */
enum imap_lit
imap_mbox_literal(void *arg, const struct imap_response *r,
    const struct imap_literal *lit)
{
	struct imap		*p = arg;
	const struct imap_arg	*prev = lit->prev;
	const char		*name;
	struct cmd		*c = NULL;
	uint32_t		 uid = 0;
	int			 body;
	char			 tmp[96];

	p->lit_deliver = 0;
	if (r->kind != IMAP_UNTAGGED || !r->has_num ||
	    !imap_word_is(r, "FETCH") || lit->depth != 1 || prev == NULL ||
	    prev->type != IMAP_ARG_ATOM)
		return IMAP_LIT_BUFFER;
	name = imap_arg_data(r, prev);
	if (!message_item(name, prev->len))
		return IMAP_LIT_BUFFER;
	if (mailbox_open(p) && r->num > p->count) {
		imap_fail(p, ERR_PROTOCOL, "FETCH for message %u, only %u "
		    "exist", r->num, p->count);
		return IMAP_LIT_REJECT;
	}
	body = mailbox_open(p) && str_ieq_n(name, prev->len, "BODY[]");
	if (body) {
		if (p->cur_mode != CUR_NONE) {
			imap_fail(p, ERR_PROTOCOL, "two BODY[] in one FETCH "
			    "response");
			return IMAP_LIT_REJECT;
		}
		if ((uid = uid_so_far(r, prev)) == 0)
			uid = map_uid(p, r->num);
		if (uid != 0 && (c = imap_cmd_find_body(p, uid)) != NULL &&
		    c->got)
			c = NULL;
	}
	if (p->max_size != 0 && lit->size > p->max_size) {
		/* Refused before a byte is read, ours or not (M11, M13). */
		snprintf(tmp, sizeof(tmp), "literal of %llu octets exceeds "
		    "max_message_size", (unsigned long long)lit->size);
		if (c != NULL) {
			c->got = 1;
			if (imap_msg_failed(p, uid, IMAP_FAIL_TOO_BIG, tmp) == 0)
				imap_fail(p, ERR_PROTOCOL, "UID %u: %s", uid,
				    tmp);
		} else
			imap_fail(p, ERR_PROTOCOL, "message data: %s", tmp);
		return IMAP_LIT_REJECT;
	}
	if (!body)
		return IMAP_LIT_STREAM;		/* not ours: dropped */
	if (c == NULL) {
		log_debug(p->account, "imap: dropping a body for message %u "
		    "(UID %u) that was not asked for", r->num, uid);
		p->cur_mode = CUR_DROP;
		return IMAP_LIT_STREAM;
	}
	p->cur_mode = CUR_DELIVER;
	p->cur_uid = uid;
	p->lit_deliver = 1;
	if (p->cb.msg_begin(p->arg, uid, lit->size) == -1) {
		imap_owner_fail(p, "msg_begin");
		return IMAP_LIT_REJECT;
	}
	return IMAP_LIT_STREAM;
}

int
imap_mbox_literal_data(void *arg, const void *data, size_t len)
{
	struct imap	*p = arg;

	if (!p->lit_deliver)
		return 0;
	if (p->cb.msg_data(p->arg, data, len) == -1) {
		imap_owner_fail(p, "msg_data");
		return -1;
	}
	return 0;
}

void
imap_mbox_reset_cur(struct imap *p)
{
	p->cur_mode = CUR_NONE;
	p->cur_uid = 0;
	p->lit_deliver = 0;
}

/* A body that came as a quoted string or NIL rather than a literal. */
static void
small_body(struct imap *p, uint32_t uid, const struct imap_response *r,
    const struct imap_arg *v)
{
	struct cmd	*c = uid != 0 ? imap_cmd_find_body(p, uid) : NULL;
	char		 tmp[96];

	if (c == NULL || c->got)
		return;
	c->got = 1;
	if (v->type == IMAP_ARG_NIL) {
		imap_msg_failed(p, uid, IMAP_FAIL_NIL, "the server sent BODY[] NIL");
		return;
	}
	if (v->type != IMAP_ARG_QUOTED && v->type != IMAP_ARG_LITERAL) {
		imap_fail(p, ERR_PROTOCOL, "BODY[] is not a string");
		return;
	}
	if (p->max_size != 0 && v->len > p->max_size) {
		snprintf(tmp, sizeof(tmp), "body of %u octets exceeds "
		    "max_message_size", v->len);
		imap_msg_failed(p, uid, IMAP_FAIL_TOO_BIG, tmp);
		return;
	}
	if (p->cb.msg_begin(p->arg, uid, v->len) == -1 ||
	    (v->len > 0 && p->cb.msg_data(p->arg, imap_arg_data(r, v),
	    v->len) == -1) || p->cb.msg_end(p->arg, uid) == -1)
		imap_owner_fail(p, "message callbacks");
}

/* "* n FETCH": a listing entry, a body's end, or flags to ignore. */
static void
on_fetch(struct imap *p, const struct imap_response *r)
{
	struct fetch_items	 fi;
	struct cmd		*c;
	uint32_t		 known;

	if (!mailbox_open(p))
		return;		/* the previous mailbox's, or none */
	if (r->num > p->count) {
		/* M18 (CVE-2002-0146 class). */
		imap_fail(p, ERR_PROTOCOL, "FETCH for message %u, only %u "
		    "exist", r->num, p->count);
		return;
	}
	if (fetch_items(r, &fi) == -1) {
		imap_fail(p, ERR_PROTOCOL, "malformed FETCH response");
		return;
	}
	if (fi.has_uid && p->scan && p->op == IMAP_OP_FETCH && p->op_sent) {
		/* imap_fetch_flags(): report, within the bound only. */
		if (fi.has_flags && (p->scan_below == 0 ||
		    fi.uid < p->scan_below) && p->cb.flags(p->arg, fi.uid,
		    fi.seen) == -1)
			imap_owner_fail(p, "flags");
	} else if (fi.has_uid) {
		if (p->op == IMAP_OP_FETCH && p->op_sent && !p->listed) {
			map_set(p, r->num, fi.uid);
			/* n:* also returns the last message below n. */
			if (fi.has_size && fi.uid >= p->lo)
				cand_add(p, fi.uid, fi.size);
		} else if ((known = map_uid(p, r->num)) != 0 &&
		    known != fi.uid) {
			log_debug(p->account, "imap: message %u is UID %u, "
			    "not %u: sequence map dropped", r->num, fi.uid,
			    known);
			p->map_ok = 0;
		}
	}
	if (p->cur_mode == CUR_DELIVER) {
		if (fi.has_uid && fi.uid != p->cur_uid) {
			imap_fail(p, ERR_PROTOCOL, "body for UID %u arrived "
			    "with UID %u", p->cur_uid, fi.uid);
			return;
		}
		if ((c = imap_cmd_find_body(p, p->cur_uid)) != NULL)
			c->got = 1;
		if (p->cb.msg_end(p->arg, p->cur_uid) == -1)
			imap_owner_fail(p, "msg_end");
		return;
	}
	if (fi.body != NULL && fi.body->type != IMAP_ARG_STREAMED)
		small_body(p, fi.has_uid ? fi.uid : map_uid(p, r->num), r,
		    fi.body);
}

/* "* n EXISTS": the new count; new mail for the owner. */
static void
on_exists(struct imap *p, uint32_t n)
{
	if (n > IMAP_COUNT_MAX) {
		/* M18 (CVE-2001-1009 class). */
		imap_fail(p, ERR_PROTOCOL, "EXISTS count %u out of range", n);
		return;
	}
	if (p->state == IMAP_SELECT) {
		p->count = n;
		return;
	}
	if (!mailbox_open(p))
		return;
	if (n < p->count) {
		/* RFC 9051 7.4.1 forbids it; resync what we can (M32). */
		log_warnx(p->account, "imap: EXISTS went down from %u to %u "
		    "without EXPUNGE", p->count, n);
		p->map_ok = 0;
	}
	p->count = n;
	if (p->cb.exists != NULL)
		p->cb.exists(p->arg, n);
}

/* "* n EXPUNGE": one message less; later ones move down. */
static void
on_expunge(struct imap *p, uint32_t n)
{
	if (!mailbox_open(p))
		return;		/* the previous mailbox's, or none */
	if (n > p->count) {
		imap_fail(p, ERR_PROTOCOL, "EXPUNGE of message %u, only %u "
		    "exist", n, p->count);
		return;
	}
	p->count--;
	map_expunge(p, n);
}

/* Copy a name for a callback: NUL-terminated, no NUL inside, bounded. */
static int
name_copy(struct imap *p, const char *s, size_t len, char *dst)
{
	char	 tmp[96];

	if (len > IMAP_NAME_MAX || memchr(s, '\0', len) != NULL) {
		log_warnx(p->account, "imap: mailbox name skipped (too long "
		    "or NUL): %s", imap_clean(tmp, sizeof(tmp), s, len));
		return -1;
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

/* "* LIST (flags) delim name [extensions]" for imap_list(). */
static void
on_list(struct imap *p, const struct imap_response *r)
{
	const struct imap_arg	*fl = imap_arg_first(r), *dl, *nm, *a;
	const char		*s;
	size_t			 len;
	char			 name[IMAP_NAME_MAX + 1], delim = '\0';

	if (p->op != IMAP_OP_LIST || !p->op_sent)
		return;		/* unsolicited (IMAP4rev2 SELECT sends one) */
	if (fl == NULL || fl->type != IMAP_ARG_LIST ||
	    (dl = imap_arg_next(r, fl)) == NULL ||
	    (nm = imap_arg_next(r, dl)) == NULL ||
	    imap_arg_string(r, nm, &s, &len) == -1 ||
	    (dl->type != IMAP_ARG_NIL && (dl->type != IMAP_ARG_QUOTED ||
	    dl->len != 1))) {
		imap_fail(p, ERR_PROTOCOL, "malformed LIST response");
		return;
	}
	if (dl->type == IMAP_ARG_QUOTED)
		delim = imap_arg_data(r, dl)[0];
	for (a = imap_arg_child(r, fl); a != NULL; a = imap_arg_next(r, a))
		if (imap_arg_is(r, a, "\\Noselect") ||
		    imap_arg_is(r, a, "\\NonExistent"))
			return;
	if (name_copy(p, s, len, name) == -1)
		return;
	if (p->cb.mailbox != NULL &&
	    p->cb.mailbox(p->arg, name, len, delim) == -1)
		imap_owner_fail(p, "mailbox");
}

/* "* STATUS name (MESSAGES n UIDNEXT n UIDVALIDITY n)". */
static void
on_status(struct imap *p, const struct imap_response *r)
{
	const struct imap_arg	*nm = imap_arg_first(r), *l, *n, *v;
	struct imap_status_info	 si;
	const char		*s;
	size_t			 len;
	uint64_t		 x;
	char			 name[IMAP_NAME_MAX + 1];

	if (p->op != IMAP_OP_STATUS || !p->op_sent)
		return;
	memset(&si, 0, sizeof(si));
	if (imap_arg_string(r, nm, &s, &len) == -1 ||
	    (l = imap_arg_next(r, nm)) == NULL || l->type != IMAP_ARG_LIST)
		goto bad;
	for (n = imap_arg_child(r, l); n != NULL; n = imap_arg_next(r, v)) {
		if ((v = imap_arg_next(r, n)) == NULL)
			goto bad;
		if (imap_arg_is(r, n, "MESSAGES")) {
			if (imap_arg_number(r, v, IMAP_COUNT_MAX, &x) == -1)
				goto bad;
			si.messages = (uint32_t)x;
			si.has_messages = 1;
		} else if (imap_arg_is(r, n, "UIDNEXT") ||
		    imap_arg_is(r, n, "UIDVALIDITY")) {
			if (imap_arg_number(r, v, IMAP_NUMBER_MAX, &x) == -1 ||
			    x == 0)
				goto bad;
			if (imap_arg_is(r, n, "UIDNEXT")) {
				si.uidnext = (uint32_t)x;
				si.has_uidnext = 1;
			} else {
				si.uidvalidity = (uint32_t)x;
				si.has_uidvalidity = 1;
			}
		}
	}
	if (name_copy(p, s, len, name) == -1)
		return;
	if (p->cb.status != NULL && p->cb.status(p->arg, name, len, &si) == -1)
		imap_owner_fail(p, "status");
	return;
bad:
	imap_fail(p, ERR_PROTOCOL, "malformed STATUS response");
}

/* Response codes of untagged status responses about the mailbox. */
static void
on_codes(struct imap *p, const struct imap_response *r)
{
	uint32_t	 v;
	char		 tmp[64];

	if (imap_code_is(r, "UIDVALIDITY")) {
		if (p->state != IMAP_SELECT && !mailbox_open(p))
			return;
		if (r->code_arg == NULL ||
		    imap_parse_nz32(r->code_arg, r->code_arglen, &v) == -1) {
			/* M21: never guess a UIDVALIDITY. */
			imap_fail(p, ERR_PROTOCOL, "malformed UIDVALIDITY: %s",
			    imap_clean(tmp, sizeof(tmp), r->code_arg,
			    r->code_arglen));
			return;
		}
		if (p->state == IMAP_SELECT) {
			p->uidvalidity = v;
			p->have_uidvalidity = 1;
		} else if (v != p->uidvalidity) {
			/* M25: every UID we hold is meaningless now. */
			imap_fail(p, ERR_PROTOCOL, "UIDVALIDITY changed from "
			    "%u to %u during the session", p->uidvalidity, v);
		}
		return;
	}
	if (imap_code_is(r, "UIDNEXT")) {
		if (p->state != IMAP_SELECT)
			return;
		if (r->code_arg != NULL &&
		    imap_parse_nz32(r->code_arg, r->code_arglen, &v) == 0)
			p->uidnext = v;
		else
			log_debug(p->account, "imap: malformed UIDNEXT ignored");
		return;
	}
	if (imap_code_is(r, "APPENDUID") || imap_code_is(r, "COPYUID")) {
		if (imap_parse_uid_code(r->code, r->codelen, r->code_arg,
		    r->code_arglen, &v) == -1)
			log_debug(p->account, "imap: malformed %.*s ignored",
			    (int)r->codelen, r->code);
	}
}

/* Untagged responses about the mailbox or an operation's data. */
void
imap_mbox_untagged(struct imap *p, const struct imap_response *r)
{
	if (r->cond != IMAP_COND_NONE) {
		on_codes(p, r);
		return;
	}
	if (r->has_num) {
		if (imap_word_is(r, "EXISTS"))
			on_exists(p, r->num);
		else if (imap_word_is(r, "EXPUNGE"))
			on_expunge(p, r->num);
		else if (imap_word_is(r, "FETCH"))
			on_fetch(p, r);
		return;		/* RECENT and the unknown: nothing to do */
	}
	if (imap_word_is(r, "LIST"))
		on_list(p, r);
	else if (imap_word_is(r, "STATUS"))
		on_status(p, r);
	else if (imap_word_is(r, "VANISHED"))
		/* Only with QRESYNC, which we never enable (RFC 7162). */
		imap_fail(p, ERR_PROTOCOL, "VANISHED without QRESYNC");
}
