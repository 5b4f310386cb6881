/* ISC licence; see LICENSE. */
#ifndef HAUL_TOKEN_H
#define HAUL_TOKEN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "haul/buf.h"

/*
 * The X-Haul-Token header: hauld signs every message it injects, and
 * haul-milter verifies the signature before it trusts the account tag.
 * The format, the canonical string and the verification rules are in
 * docs/token.md; this header states the contracts.
 *
 *   X-Haul-Token: v=1; k=<key id>; a=<account>; m=<mailbox>;
 *	u=<uidvalidity>.<uid>; t=<unix time>; s=<base64url HMAC-SHA256>
 *
 * Nothing here logs or touches global state except key_load() and
 * haul_key_generate(), which read and write the key file.
 */

#define TOKEN_HEADER		"X-Haul-Token"
/* Cap on the raw header value, folding included (a 1000-byte mailbox
 * percent-encodes to 3000 characters, so 2048 would not do). */
#define TOKEN_MAX_LEN		4096
#define TOKEN_KEYID_LEN		8	/* lower-case hex */
#define TOKEN_ACCOUNT_MAX	64	/* [A-Za-z0-9._-] */
#define TOKEN_MAILBOX_MAX	1000	/* bytes 0x01-0xff */
#define TOKEN_UID_MAX		70	/* bytes 0x21-0x7e (POP3 UIDL) */
#define TOKEN_SIG_LEN		32	/* HMAC-SHA256 */
#define TOKEN_SIG_B64_LEN	43	/* base64url, no padding */
#define TOKEN_SKEW		60	/* seconds a token may come from the future */

#define HAUL_KEY_MIN		32
#define HAUL_KEY_MAX		64
#define HAUL_KEY_GEN_LEN	32	/* bytes haul_key_generate() writes */

/*
 * A signing key.  bytes is secret: key_free() wipes it.  id is the first
 * eight hex digits of SHA-256(bytes); it names the key in the token so a
 * verifier holding the current and the previous key knows which to use.
 */
struct haul_key {
	unsigned char	 bytes[HAUL_KEY_MAX];
	size_t		 len;
	char		 id[TOKEN_KEYID_LEN + 1];
};

/*
 * The signed fields, decoded.  All strings are NUL-terminated and cannot
 * hold NUL.  POP3 accounts use mailbox "INBOX" and uidvalidity 0.
 * key_id and sig are outputs of token_parse(); token_make() ignores them
 * (the key names itself).
 */
struct token_fields {
	char		 key_id[TOKEN_KEYID_LEN + 1];
	char		 account[TOKEN_ACCOUNT_MAX + 1];
	char		 mailbox[TOKEN_MAILBOX_MAX + 1];
	uint32_t	 uidvalidity;
	char		 uid[TOKEN_UID_MAX + 1];
	int64_t		 time;		/* seconds since the epoch, >= 0 */
	unsigned char	 sig[TOKEN_SIG_LEN];
};

/*
 * Read a key file: one line holding the standard base64 of 32..64 bytes,
 * optionally followed by one LF.  The file must be a regular file, not a
 * symlink, and have no group or other permission bits.  Returns 0, or -1
 * with a message naming path appended to err (which may be NULL).
 */
int	 key_load(const char *path, struct haul_key *out, struct buf *err);
/* Set up a key from raw bytes (32..64); -1 if len is out of range. */
int	 key_from_bytes(struct haul_key *out, const void *bytes, size_t len);
/* Wipe the key material.  Safe on a zeroed or already freed key. */
void	 key_free(struct haul_key *);
/*
 * Create a new key file at path (mode 0600, O_EXCL|O_NOFOLLOW: never
 * replaces an existing file) holding 32 random bytes.  If out is not NULL
 * it receives the key.  Returns 0, or -1 with a message in err; a partly
 * written file is removed.
 */
int	 haul_key_generate(const char *path, struct haul_key *out,
	     struct buf *err);

/*
 * Append the header value (without "X-Haul-Token:" and without CRLF) for
 * f signed with key to out.  The value is one line of printable ASCII; a
 * long mailbox is broken by single spaces so the caller can fold it
 * there.  Returns 0, or -1 if a field is out of range (EINVAL) or out's
 * cap would be passed; out is unchanged on failure.
 */
int	 token_make(const struct haul_key *, const struct token_fields *,
	     struct buf *out);

/*
 * Parse a header value as received (it may be folded with CRLF or LF
 * followed by a space or tab).  Pure (no I/O, no global state) and safe
 * on any bytes, for fuzzing (reliability.md F12).
 * Returns 0 and fills out (signature not checked), or -1 with a short
 * static description in *reason (reason may be NULL).
 */
int	 token_parse(const char *value, size_t len, struct token_fields *out,
	     const char **reason);

/*
 * Parse and check a token against keys[0..nkeys) (current and previous
 * key during rotation) at time now: signature first, then age.  A token
 * may be max_age seconds old and TOKEN_SKEW seconds in the future.
 * Returns 0 and fills out (which may be NULL), or -1 with *reason one of
 * "malformed", "unknown key", "bad signature", "expired",
 * "from the future".  reason may be NULL.
 */
int	 token_verify(const struct haul_key *keys, size_t nkeys,
	     const char *value, size_t len, time_t now, unsigned max_age,
	     struct token_fields *out, const char **reason);

/*
 * The canonical string the HMAC covers (docs/token.md), for tests and
 * tools.  key_id is taken from f.  Returns 0 or -1 (out's cap).
 */
int	 token_canonical(const struct token_fields *, struct buf *out);

/*
 * The token's percent-encoding: [A-Za-z0-9._/-] stay, every other byte
 * becomes %XX with upper-case hex.  Appends to out; 0 or -1 (cap).
 */
int	 token_pct_encode(struct buf *out, const void *src, size_t len);
/*
 * Strict inverse: upper-case hex only, no %XX for a byte that would stay
 * as itself, no %00.  Writes at most dstsz - 1 bytes plus a NUL to dst and
 * sets *outlen.  Returns 0, or -1 on bad or too long input.
 */
int	 token_pct_decode(const char *src, size_t len, char *dst, size_t dstsz,
	     size_t *outlen);

#endif
