/* ISC licence; see LICENSE. */
#ifndef HAUL_IMAP_INT_H
#define HAUL_IMAP_INT_H

/*
 * Internals shared by fetcher/imap.c (connection, authentication, the
 * input loop), fetcher/imap_mbox.c (the selected mailbox's data: listing,
 * bodies, EXISTS/EXPUNGE, LIST, STATUS), fetcher/imap_ops.c (operations,
 * actions, IDLE, the pump) and fetcher/imap_cmd.c (tags, command
 * building, literals).  Not an API: include/haul/imap.h is.
 */

#include <stddef.h>
#include <stdint.h>

#include "haul/buf.h"
#include "haul/imap.h"

/* The tagged commands we wait for. */
enum cmd_kind {
	CMD_CAPABILITY,
	CMD_STARTTLS,
	CMD_LOGIN,
	CMD_AUTHENTICATE,
	CMD_ENABLE,
	CMD_SELECT,
	CMD_LISTING,		/* UID FETCH lo:* (UID RFC822.SIZE), or NOOP */
	CMD_BODY,		/* UID FETCH uid BODY.PEEK[] */
	CMD_SEEN,		/* UID STORE set +FLAGS.SILENT (\Seen) */
	CMD_DELETED,		/* UID STORE set +FLAGS.SILENT (\Deleted) */
	CMD_EXPUNGE,		/* UID EXPUNGE set, or EXPUNGE */
	CMD_MOVE,
	CMD_COPY,
	CMD_IDLE,
	CMD_NOOP,
	CMD_LIST,
	CMD_STATUS,
	CMD_LOGOUT,
};

/* Where a SASL exchange stands (what we sent last). */
enum sasl_step {
	SASL_SENT_AUTH,		/* "AUTHENTICATE mech" alone: "+" next */
	SASL_SENT_USER,		/* LOGIN: user name sent */
	SASL_SENT_FINAL,	/* credentials sent */
	SASL_SENT_CANCEL,	/* answered an error challenge: NO next */
};

/* How the body literal of the current FETCH response is consumed. */
enum cur_mode {
	CUR_NONE,		/* no body literal in this response yet */
	CUR_DELIVER,		/* streamed to the owner */
	CUR_DROP,		/* read and dropped: not ours, or a duplicate */
};

#define SPLITS_MAX	4	/* synchronizing literals per command */

/* One batched action item: a UID and what the owner asked for. */
struct item {
	uint32_t	 uid;
	uint8_t		 act;		/* enum imap_action */
};

/* A tagged command in flight.  tag 0 marks a free slot. */
struct cmd {
	uint32_t	 tag;
	enum cmd_kind	 kind;
	uint32_t	 uid;		/* BODY, MOVE, COPY */
	int		 got;		/* BODY: delivered or failed already */
	struct item	*items;		/* SEEN, EXPUNGE, MOVE: what to report */
	uint32_t	 nitems;
	struct buf	 rest;		/* held back until "+" (literals) */
	size_t		 splits[SPLITS_MAX];	/* pauses within rest */
	unsigned	 nsplits;
	int		 secret;	/* rest holds a credential */
};

/* A queued owner action. */
struct act {
	enum imap_action act;
	uint32_t	 uid;
	char		*folder;	/* MOVE; NULL for the delete stage */
	int		 stage;		/* MOVE via COPY: 1 = delete after */
};

/* One listed message. */
struct cand {
	uint32_t	 uid;
	uint64_t	 size;
};

/* Sequence number to UID, for the listed messages (sorted by seq). */
struct seqent {
	uint32_t	 seq;
	uint32_t	 uid;
};

#define OP_NONE		(-1)

struct imap {
	char			*account;
	char			*user;
	char			*host;
	unsigned		 port;
	enum tls_mode		 tls;
	int			 allow_plaintext;
	enum auth_mech		 auth;
	const void		*secret;	/* borrowed; NULL after auth */
	size_t			 secret_len;
	uint64_t		 max_size;
	unsigned		 max_messages;
	unsigned		 window;
	int			 allow_expunge_all;

	struct imap_cb		 cb;
	void			*arg;

	enum imap_state		 state;
	struct imap_parser	*ps;
	struct buf		 out;
	int			 out_secret;	/* out held a credential */

	/* The command being built, with its synchronizing-literal pauses. */
	struct buf		 cbuf;
	size_t			 csplits[SPLITS_MAX];
	unsigned		 ncsplits;
	int			 cbad;		/* a string could not be sent */

	struct cmd		 cmds[IMAP_INFLIGHT_MAX];
	unsigned		 ncmds;
	uint32_t		 tagseq;
	struct cmd		*cont;		/* the command a "+" is for */

	unsigned		 caps;
	int			 caps_known;
	int			 tls_active;
	int			 rev2;

	enum auth_mech		 mech;
	enum sasl_step		 sasl_step;
	char			 oauth_status[64];

	/* The selected mailbox. */
	uint32_t		 uidvalidity;
	uint32_t		 uidnext;
	uint32_t		 count;
	int			 readonly;
	int			 have_uidvalidity;
	struct seqent		*map;
	size_t			 nmap;
	size_t			 mapcap;
	int			 map_ok;

	/* The owner's current operation. */
	int			 op;		/* enum imap_op or OP_NONE */
	int			 op_sent;
	char			*opname;	/* mailbox, pattern or folder */
	int			 op_readonly;
	uint32_t		 lo;
	int			 listed;	/* the listing is complete */
	struct cand		*cands;
	size_t			 ncand;
	size_t			 candcap;
	size_t			 next;
	uint32_t		 drop_min;	/* lowest UID left out, or 0 */
	int			 scan;		/* imap_fetch_flags(), not a listing */
	uint32_t		 scan_below;	/* its UID bound; 0: none */
	unsigned		 nbodies;	/* body fetches in flight */
	int			 idle_done;	/* DONE wanted */

	/* The body literal of the FETCH response being read. */
	enum cur_mode		 cur_mode;
	uint32_t		 cur_uid;
	int			 lit_deliver;	/* this literal goes to the owner */

	/* Queued owner actions (a FIFO). */
	struct act		*acts;
	size_t			 acthead;
	size_t			 nacts;
	size_t			 actcap;
	unsigned		 nactions;	/* action commands in flight */

	int			 logout;
	int			 logout_ok;
	int			 in_input;
	int			 in_pump;
	int			 from_owner;

	enum err_class		 err;
	char			 errmsg[256];
	char			 code[48];
};

/* imap.c */
void		 imap_set_state(struct imap *, enum imap_state);
void		 imap_fail(struct imap *, enum err_class, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
void		 imap_owner_fail(struct imap *, const char *what);
const char	*imap_clean(char *dst, size_t dstsz, const char *s,
		    size_t len);

/* imap_cmd.c */
int		 imap_cmd_room(const struct imap *, unsigned n);
struct cmd	*imap_cmd_start(struct imap *, enum cmd_kind, size_t reserve);
void		 imap_cmd_add(struct imap *, const char *);
void		 imap_cmd_addf(struct imap *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
void		 imap_cmd_str(struct imap *, const char *s, size_t len);
void		 imap_cmd_uidset(struct imap *, const struct item *, size_t n);
int		 imap_cmd_finish(struct imap *, struct cmd *, const char *trace,
		    int secret);
void		 imap_cmd_continue(struct imap *, struct cmd *);
struct cmd	*imap_cmd_find(struct imap *, uint32_t tag);
struct cmd	*imap_cmd_find_body(struct imap *, uint32_t uid);
void		 imap_cmd_release(struct imap *, struct cmd *);
void		 imap_out_add(struct imap *, const void *, size_t, int secret);
void		 imap_out_wipe_slack(struct imap *);

/* imap_mbox.c */
void		 imap_map_clear(struct imap *);
void		 imap_cand_finish(struct imap *);
int		 imap_msg_failed(struct imap *, uint32_t uid, enum imap_fail,
		    const char *text);
void		 imap_mbox_untagged(struct imap *, const struct imap_response *);
void		 imap_mbox_reset_cur(struct imap *);
enum imap_lit	 imap_mbox_literal(void *, const struct imap_response *,
		    const struct imap_literal *);
int		 imap_mbox_literal_data(void *, const void *, size_t);

/* imap_ops.c */
void		 imap_pump(struct imap *);
void		 imap_owner_pump(struct imap *);
void		 imap_op_end(struct imap *, enum imap_op, int ok,
		    const char *text);
void		 imap_ops_tagged(struct imap *, struct cmd *,
		    const struct imap_response *, const char *text);
void		 imap_idle_continue(struct imap *);
void		 imap_ops_free(struct imap *);

#endif
