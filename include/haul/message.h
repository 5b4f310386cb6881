/* ISC licence; see LICENSE. */
#ifndef HAUL_MESSAGE_H
#define HAUL_MESSAGE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "haul/buf.h"

struct spool;

/*
 * The message filter sits between the fetched bytes and the spool.  It is
 * fed the message in chunks of any size (the result never depends on
 * where the chunks split) and writes to the spool:
 *
 * - Line ends normalised: CRLF stays, a bare LF or bare CR becomes CRLF,
 *   and a non-empty message always ends with CRLF.  An empty message stays
 *   empty (0 bytes; MSGF_EMPTY).
 * - In the header section (up to the first empty line) every field whose
 *   name starts with "X-Haul-" (any case), continuation lines included, is
 *   removed: only hauld may set those, and haul-milter removes them again.
 *   Every other byte is written unchanged.
 * - NUL bytes are kept and counted (nul_count).  The filter has no NUL
 *   policy: the owner decides (refuse the message, or deliver it with BDAT
 *   where NUL survives); it must not assume text without NUL.
 *
 * While it streams it captures bounded copies of the fields delivery needs:
 * Return-Path, Message-ID, Date, the first Received: fields (for XCLIENT)
 * and Delivered-To / X-Original-To / Envelope-To (multidrop).
 *
 * Past a limit (one field longer than max_field, or a header longer than
 * max_header) the filter stops interpreting: the rest of the message is
 * written unchanged apart from line ends, nothing more is stripped or
 * captured, and MSGF_HDR_LIMIT is set.  No byte is ever dropped except
 * X-Haul-* fields (counted in stripped).
 */

/* Limits; a 0 member means its default. */
struct msgf_limits {
	size_t	 max_field;	/* one field, all its lines: 64 KiB */
	size_t	 max_header;	/* the header section: 1 MiB */
	size_t	 max_value;	/* one captured value: 2048 */
	size_t	 max_received;	/* Received: fields captured: 8 */
	size_t	 max_envelope;	/* envelope recipient fields captured: 16 */
};

#define MSGF_MAX_FIELD		(64 * 1024)
#define MSGF_MAX_HEADER		(1024 * 1024)
#define MSGF_MAX_VALUE		2048
#define MSGF_MAX_RECEIVED	8
#define MSGF_MAX_ENVELOPE	16

/* msgf_info.flags */
#define MSGF_EMPTY		0x01	/* no input at all */
#define MSGF_NO_BODY		0x02	/* no empty line ended the header */
#define MSGF_ADDED_CRLF		0x04	/* last line had no line end */
#define MSGF_BARE_EOL		0x08	/* a bare CR or LF was normalised */
#define MSGF_HDR_LIMIT		0x10	/* stopped interpreting the header */
#define MSGF_BAD_HDR_LINE	0x20	/* a header line that is not a field */

/* msgf_value.flags */
#define MSGF_V_TRUNCATED	0x01	/* longer than max_value; cut */
#define MSGF_V_CTL		0x02	/* control bytes replaced by '?' */

/*
 * A captured field value: unfolded (line breaks removed), leading and
 * trailing white space trimmed, at most max_value bytes, control bytes
 * (NUL included, tab excepted) replaced by '?', so text is a safe C
 * string.  8-bit bytes are kept.  text is NULL when nothing was captured.
 */
struct msgf_value {
	char		*text;
	size_t		 len;
	unsigned	 flags;
};

enum msgf_env_kind {
	MSGF_DELIVERED_TO,
	MSGF_X_ORIGINAL_TO,
	MSGF_ENVELOPE_TO,
};

struct msgf_env {
	enum msgf_env_kind	 kind;
	struct msgf_value	 value;
};

enum msgf_rp {
	MSGF_RP_NONE,		/* no Return-Path field */
	MSGF_RP_NULL,		/* Return-Path: <> */
	MSGF_RP_ADDR,		/* Return-Path: <addr>; return_path = addr */
	MSGF_RP_BAD,		/* present but unusable */
};

/* What the filter saw.  Owned by the filter; valid until msgf_free(). */
struct msgf_info {
	uint64_t		 in_size;	/* bytes fed */
	uint64_t		 size;		/* bytes written to the spool */
	uint64_t		 header_size;	/* normalised header bytes seen */
	uint64_t		 eightbit;	/* written bytes >= 0x80 */
	uint64_t		 nul_count;	/* written NUL bytes */
	unsigned		 stripped;	/* X-Haul-* fields removed */
	unsigned		 flags;		/* MSGF_* */

	/* Only the first field of each is used. */
	enum msgf_rp		 rp;
	char			*return_path;	/* MSGF_RP_ADDR only, else NULL */
	struct msgf_value	 message_id;
	struct msgf_value	 date;

	struct msgf_value	*received;	/* topmost first */
	size_t			 nreceived;
	struct msgf_env		*envelope;	/* in header order */
	size_t			 nenvelope;
};

struct msgf;

/*
 * New filter writing to spool (borrowed; it must outlive the filter).
 * limits may be NULL for the defaults.  Never returns NULL.
 */
struct msgf	*msgf_new(struct spool *, const struct msgf_limits *);
/*
 * Feed n more bytes.  Returns 0, or -1 with errno from spool_write()
 * (EFBIG: over the size cap); errors are sticky.  EINVAL after finish.
 */
int		 msgf_write(struct msgf *, const void *p, size_t n);
/* End of input: flush, add the final CRLF.  0, or -1 with errno. */
int		 msgf_finish(struct msgf *);
/* Borrowed; complete only after msgf_finish(). */
const struct msgf_info *msgf_info(const struct msgf *);
/* Free the filter (not the spool) and set *fp to NULL; NULL is fine. */
void		 msgf_free(struct msgf **fp);

/*
 * What the prepended trace header says.  Every string may be NULL
 * ("unknown") and may hold any bytes: they are sanitised.
 */
struct trace_info {
	const char	*from_host;	/* the POP3/IMAP server */
	const char	*proto;		/* "pop3", "imap" */
	const char	*account;
	const char	*mailbox;	/* NULL: not shown (POP3) */
	const char	*uid;
	const char	*by_host;	/* our HELO name */
	const char	*id;		/* haul's id for this delivery */
	time_t		 date;
	const char	*token;		/* token_make() value, or NULL */
};

/*
 * Append the header lines hauld prepends to a message:
 *
 *   Received: from HOST (via PROTO account NAME [mailbox MBOX] uid UID)
 *	by HELO with haul id ID; DATE
 *   X-Haul-Token: VALUE			(when token is set)
 *
 * Each line ends in CRLF and is folded at spaces to at most 78 octets
 * where possible and always under 998; the output has no NUL, no bare CR
 * or LF, no empty line and only printable ASCII.  Values are cut at 200
 * bytes; bytes outside a safe set become %XX.  Returns 0, or -1 with
 * EINVAL if token holds anything but printable ASCII and single spaces
 * or a word too long to fold (out is then unchanged).
 */
int		 msg_trace_headers(struct buf *out, const struct trace_info *);

#endif
