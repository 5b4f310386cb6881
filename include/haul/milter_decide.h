/* ISC licence; see LICENSE. */
#ifndef HAUL_MILTER_DECIDE_H
#define HAUL_MILTER_DECIDE_H

#include <stddef.h>
#include <time.h>

#include "haul/config.h"
#include "haul/token.h"

/*
 * haul-milter's decisions, with no libmilter in sight: the callbacks feed
 * what the MTA reports (listener, recipients, header fields) into a
 * struct md_msg, and md_decide() turns it into a verdict plus the list of
 * edits to ask the MTA for.  Pure: no I/O, no clock, no globals, no
 * logging; every input is bounded, so hostile mail cannot grow the state.
 * docs/milter.md describes the rules.
 */

#define MD_PREFIX		"X-Haul-"
#define MD_ACCOUNT_HEADER	"X-Haul-Account"
#define MD_MAX_PLACEHOLDERS	100	/* placeholder recipients per message */
#define MD_MAX_STRIP_NAMES	256	/* distinct X-Haul-* field names */
#define MD_MAX_HOPS		20	/* = the multidrop_hop maximum */
#define MD_VALUE_MAX		998	/* longest multidrop field value kept */
#define MD_QUEUE_ID_MAX		64
#define MD_REASON_MAX		200
#define MD_SUMMARY_MAX		512

/*
 * What one message is judged against: the configuration and the keys
 * (current first, then previous).  Borrowed pointers: the owner keeps
 * them alive and unchanged while the policy is in use.  md_policy_init()
 * builds a sorted account index so a lookup stays cheap with thousands
 * of accounts.
 */
struct md_policy {
	const struct config		 *cf;
	const struct haul_key		 *keys;
	size_t				  nkeys;
	const struct config_account	**byname;	/* owned index */
};

void	 md_policy_init(struct md_policy *, const struct config *,
	     const struct haul_key *keys, size_t nkeys);
void	 md_policy_free(struct md_policy *);
/* The account called name, or NULL.  Borrowed from the config. */
const struct config_account *md_find_account(const struct md_policy *,
	     const char *name);

/* What the MTA told us about one connection and its current message. */
struct md_msg;

struct md_msg	*md_msg_new(void);
void		 md_msg_free(struct md_msg **);
/* Forget the message (new MAIL FROM, abort, end); keep the listener. */
void		 md_msg_reset(struct md_msg *);
/* The {daemon_name} macro; NULL if the MTA did not send it. */
void		 md_set_daemon_name(struct md_msg *, const char *);
const char	*md_daemon_name(const struct md_msg *);
/* One envelope recipient, as the MTA gave it ("<a@b>" or "a@b"). */
void		 md_add_rcpt(struct md_msg *, const struct md_policy *,
		     const char *rcpt);
/* One header field: name without the colon, value as the MTA gave it. */
void		 md_add_header(struct md_msg *, const struct md_policy *,
		     const char *name, const char *value);
/* Header fields that will be removed (tests, logs). */
unsigned	 md_strip_count(const struct md_msg *);

enum md_verdict {
	MD_ACCEPT,	/* apply the actions and let the message go on */
	MD_REJECT,	/* permanent: rcode/xcode/reason */
	MD_ERROR,	/* internal or configuration failure: on_error */
};

enum md_act_kind {
	MD_ACT_DELHDR,	/* name, index (1-based among same-named fields) */
	MD_ACT_ADDRCPT,	/* value: "<addr>" */
	MD_ACT_DELRCPT,	/* value: the recipient exactly as the MTA sent it */
	MD_ACT_ADDHDR,	/* name, value (may be folded with "\n\t") */
};

struct md_action {
	enum md_act_kind	 kind;
	char			*name;
	int			 index;
	char			*value;
};

/*
 * A decision.  reason is printable ASCII without '%' (safe for
 * smfi_setreply); summary is for the log.  account is the token's account
 * once the token verified, else empty.  For MD_ERROR the actions hold
 * only the header removals, so on_error = accept never lets a forged
 * X-Haul-* field through nor maps a recipient.
 */
struct md_result {
	enum md_verdict		 verdict;
	char			 rcode[4];
	char			 xcode[8];
	char			 reason[MD_REASON_MAX];
	char			 summary[MD_SUMMARY_MAX];
	char			 account[TOKEN_ACCOUNT_MAX + 1];
	struct md_action	*acts;
	size_t			 nacts;
	size_t			 capacts;
};

/*
 * Judge the message at its end.  now is the wall clock; queue_id the
 * MTA's id (NULL or junk becomes "unknown").  Fills out (free it with
 * md_result_free()).
 */
void	 md_decide(const struct md_policy *, const struct md_msg *, time_t now,
	     const char *queue_id, struct md_result *out);
void	 md_result_free(struct md_result *);
const char *md_verdict_name(enum md_verdict);

/*
 * Helpers exposed for tests.  md_parse_addr() takes one address from a
 * header value ("a@b", "<a@b>", folded or padded), checks the local part
 * (dot-atom, <= 64) and domain (LDH labels, <= 253) and writes
 * "local@domain" into dst; -1 if it is not exactly one such address.
 */
int	 md_parse_addr(const char *value, char *dst, size_t dstsz);
/* The multidrop recipient for acct, or -1 (unknown: caller applies policy). */
int	 md_multidrop_rcpt(const struct config_account *acct,
	     const char *value, char *dst, size_t dstsz);

#endif
