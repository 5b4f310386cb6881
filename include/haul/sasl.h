/* ISC licence; see LICENSE. */
#ifndef HAUL_SASL_H
#define HAUL_SASL_H

#include <stddef.h>

#include "haul/buf.h"

/*
 * Pure SASL client encoders and decoders, shared by the POP3 and IMAP
 * machines (and SMTP AUTH if it ever needs them).  No I/O, no state, no
 * globals: every function builds one client message from its arguments
 * and appends its base64 form (RFC 4648, standard alphabet, padded) to
 * out, without CRLF.  They return 0, or -1 on an invalid argument or when
 * out's cap would be passed; on -1 out is left as it was.
 *
 * Secrets.  The raw message, which holds the password or bearer token, is
 * built in a private buffer sized exactly once (so no realloc leaves an
 * unwiped copy behind) and wiped before return.  The base64 appended to
 * out is as secret as the password itself: room for it is reserved before
 * the first byte is written, for the same reason, and the caller must
 * wipe out (buf_free_secret() or explicit_bzero) when done with it.
 *
 * Strings are C strings (user, authzid, host) and must not hold control
 * bytes; secrets are pointer + length and are never NUL-terminated here.
 */

#define SASL_FIELD_MAX		1024	/* user, authzid, host: octets */
#define SASL_SECRET_MAX		16384	/* password or bearer token: octets */
#define SASL_CHALLENGE_MAX	8192	/* decoded challenge: octets */

/*
 * PLAIN (RFC 4616): authzid NUL user NUL password.  authzid may be NULL
 * or "" (none).  user must be non-empty; neither it nor the password may
 * hold NUL.
 */
int	 sasl_plain(struct buf *out, const char *authzid, const char *user,
	    const void *secret, size_t secretlen);

/*
 * LOGIN (draft-murchison-sasl-login): one field, the user name or the
 * password, base64-encoded.  len must be 1..SASL_SECRET_MAX and data must
 * not hold NUL.
 */
int	 sasl_login(struct buf *out, const void *data, size_t len);

/*
 * XOAUTH2 (Google, Microsoft): "user=" user ^A "auth=Bearer " token ^A ^A.
 * The token must be an RFC 6750 b64token (sasl_bearer_valid()).
 */
int	 sasl_xoauth2(struct buf *out, const char *user, const void *token,
	    size_t tokenlen);

/*
 * OAUTHBEARER (RFC 7628): the GS2 header "n,a=" user "," (user escaped
 * per RFC 5801: "," -> "=2C", "=" -> "=3D"; user NULL omits a=), then
 * ^A "host=" host (if host is not NULL), ^A "port=" port (if port is not
 * 0), ^A "auth=Bearer " token ^A ^A.
 */
int	 sasl_oauthbearer(struct buf *out, const char *user, const char *host,
	    unsigned port, const void *token, size_t tokenlen);

/*
 * What the client sends after an OAUTHBEARER error challenge: the single
 * octet %x01, base64-encoded (RFC 7628 section 3.2.3).  After an XOAUTH2
 * error challenge the client sends an empty response instead.
 */
#define SASL_OAUTHBEARER_ABORT	"AQ=="

/* 1 if token[0..len) is an RFC 6750 b64token: 1*(ALPHA DIGIT -._~+/) *"=". */
int	 sasl_bearer_valid(const void *token, size_t len);

/*
 * Decode a server challenge (the text after "+ " or "334 "), strictly
 * (base64_decode()), appending at most max octets to out.  An empty
 * challenge is valid and appends nothing.  Returns 0, or -1 on invalid
 * base64 or when the decoded challenge would pass max; nothing larger
 * than max is ever allocated for it.
 */
int	 sasl_decode_challenge(struct buf *out, const char *b64, size_t len,
	    size_t max);

/*
 * From the JSON of an OAUTHBEARER/XOAUTH2 error challenge (RFC 7628
 * section 3.2.2), extract the value of "status" (e.g. "invalid_token")
 * into dst (NUL-terminated, truncated to dstsz - 1).  Only a plain string
 * of printable ASCII without escapes is accepted: this is for logs and
 * error messages, not a JSON parser.  Returns 0, or -1 if not found.
 */
int	 sasl_oauth_error_status(const void *json, size_t len, char *dst,
	    size_t dstsz);

#endif
