/* ISC licence; see LICENSE. */
#include <criterion/criterion.h>
#include <string.h>

#include "haul/buf.h"
#include "haul/sasl.h"

/* Run an encoder into a fresh buffer and compare with the expected text. */
#define ENC_EQ(call, want) do {						\
	struct buf b_ = BUF_INIT;					\
	struct buf *out = &b_;						\
	cr_assert_eq((call), 0, "%s failed", #call);			\
	cr_assert_str_eq(b_.data, (want));				\
	buf_free_secret(&b_);						\
} while (0)

#define ENC_FAILS(call) do {						\
	struct buf b_ = BUF_INIT;					\
	struct buf *out = &b_;						\
	cr_assert_eq((call), -1, "%s should fail", #call);		\
	cr_assert_eq(b_.len, 0, "a failed encoder must not append");	\
	buf_free_secret(&b_);						\
} while (0)

Test(sasl, plain_vectors)
{
	ENC_EQ(sasl_plain(out, NULL, "alice", "s3cret", 6),
	    "AGFsaWNlAHMzY3JldA==");
	ENC_EQ(sasl_plain(out, "", "alice", "s3cret", 6),
	    "AGFsaWNlAHMzY3JldA==");
	ENC_EQ(sasl_plain(out, "zid", "u", "p", 1), "emlkAHUAcA==");
}

Test(sasl, plain_rejects_bad_fields)
{
	ENC_FAILS(sasl_plain(out, NULL, "", "x", 1));
	ENC_FAILS(sasl_plain(out, NULL, NULL, "x", 1));
	ENC_FAILS(sasl_plain(out, NULL, "a\r\nb", "x", 1));
	ENC_FAILS(sasl_plain(out, NULL, "alice", "a\0b", 3));
	ENC_FAILS(sasl_plain(out, NULL, "alice", "", 0));
	ENC_FAILS(sasl_plain(out, "z\001", "alice", "x", 1));
}

Test(sasl, plain_appends_after_existing_data)
{
	struct buf	 b = BUF_INIT;

	buf_add_str(&b, "AUTH PLAIN ");
	cr_assert_eq(sasl_plain(&b, NULL, "alice", "s3cret", 6), 0);
	cr_assert_str_eq(b.data, "AUTH PLAIN AGFsaWNlAHMzY3JldA==");
	buf_free_secret(&b);
}

Test(sasl, plain_respects_output_cap)
{
	struct buf	 b;

	buf_init(&b, 8);
	cr_assert_eq(sasl_plain(&b, NULL, "alice", "s3cret", 6), -1);
	cr_assert_eq(b.len, 0);
	buf_free_secret(&b);
}

Test(sasl, login_fields)
{
	ENC_EQ(sasl_login(out, "alice", 5), "YWxpY2U=");
	ENC_EQ(sasl_login(out, "s3cret", 6), "czNjcmV0");
	ENC_FAILS(sasl_login(out, "", 0));
	ENC_FAILS(sasl_login(out, "a\0", 2));
}

Test(sasl, xoauth2_vector)
{
	ENC_EQ(sasl_xoauth2(out, "alice", "ya29.tok", 8),
	    "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB5YTI5LnRvawEB");
	ENC_FAILS(sasl_xoauth2(out, "alice", "bad token", 9));
	ENC_FAILS(sasl_xoauth2(out, "al\001ice", "tok", 3));
}

Test(sasl, oauthbearer_vectors)
{
	ENC_EQ(sasl_oauthbearer(out, "alice", "pop.example.com", 995,
	    "ya29.tok", 8),
	    "bixhPWFsaWNlLAFob3N0PXBvcC5leGFtcGxlLmNvbQFwb3J0PTk5NQFhdXRo"
	    "PUJlYXJlciB5YTI5LnRvawEB");
	/* RFC 5801 saslname escaping of "," and "=". */
	ENC_EQ(sasl_oauthbearer(out, "a,b=c", NULL, 0, "t", 1),
	    "bixhPWE9MkNiPTNEYywBYXV0aD1CZWFyZXIgdAEB");
	/* No authzid at all. */
	ENC_EQ(sasl_oauthbearer(out, NULL, NULL, 0, "t", 1),
	    "biwsAWF1dGg9QmVhcmVyIHQBAQ==");
	ENC_FAILS(sasl_oauthbearer(out, "alice", "host\001x", 1, "t", 1));
	ENC_FAILS(sasl_oauthbearer(out, "alice", NULL, 0, "t\001", 2));
}

Test(sasl, bearer_token_charset)
{
	cr_assert(sasl_bearer_valid("ya29.a0-_~+/x==", 15));
	cr_assert(sasl_bearer_valid("abc", 3));
	cr_assert_not(sasl_bearer_valid("", 0));
	cr_assert_not(sasl_bearer_valid("=abc", 4), "padding only at the end");
	cr_assert_not(sasl_bearer_valid("ab=c", 4));
	cr_assert_not(sasl_bearer_valid("a b", 3));
	cr_assert_not(sasl_bearer_valid("a\001", 2));
	cr_assert_not(sasl_bearer_valid("a\r\n", 3));
}

Test(sasl, challenge_decoding)
{
	struct buf	 b = BUF_INIT;

	cr_assert_eq(sasl_decode_challenge(&b, "", 0, 16), 0);
	cr_assert_eq(b.len, 0, "an empty challenge is valid and empty");
	cr_assert_eq(sasl_decode_challenge(&b, "VXNlcm5hbWU6", 12, 64), 0);
	cr_assert_str_eq(b.data, "Username:");
	buf_reset(&b);
	cr_assert_eq(sasl_decode_challenge(&b, "VXNlcm5hbWU6", 12, 8), -1,
	    "9 octets do not fit a cap of 8");
	cr_assert_eq(b.len, 0);
	cr_assert_eq(sasl_decode_challenge(&b, "not base64!", 11, 64), -1);
	cr_assert_eq(sasl_decode_challenge(&b, "QQ", 2, 64), -1,
	    "padding is required");
	cr_assert_eq(b.len, 0);
	buf_free(&b);
}

Test(sasl, huge_challenge_refused_before_decoding)
{
	struct buf	 b = BUF_INIT;
	size_t		 n = 1024 * 1024;
	char		*big = malloc(n);

	cr_assert_not_null(big);
	memset(big, 'A', n);
	cr_assert_eq(sasl_decode_challenge(&b, big, n, SASL_CHALLENGE_MAX), -1);
	cr_assert_null(b.data, "nothing may be allocated for it");
	free(big);
}

Test(sasl, oauth_error_status)
{
	static const char j1[] =
	    "{\"status\":\"401\",\"schemes\":\"Bearer\",\"scope\":\"x\"}";
	static const char j2[] = "{ \"scope\": \"a\", \"status\" : "
	    "\"invalid_token\" }";
	static const char j3[] = "{\"status\":\"a\\\"b\"}";
	static const char j4[] = "{\"status\":\"abc";
	static const char j5[] = "{\"status\":\"\001\"}";
	char	 st[8];

	cr_assert_eq(sasl_oauth_error_status(j1, strlen(j1), st, sizeof(st)),
	    0);
	cr_assert_str_eq(st, "401");
	cr_assert_eq(sasl_oauth_error_status(j2, strlen(j2), st, sizeof(st)),
	    0);
	cr_assert_str_eq(st, "invalid", "truncated to the destination");
	cr_assert_eq(sasl_oauth_error_status("{}", 2, st, sizeof(st)), -1);
	cr_assert_eq(sasl_oauth_error_status(j3, strlen(j3), st, sizeof(st)),
	    -1, "escapes are refused");
	cr_assert_eq(sasl_oauth_error_status(j4, strlen(j4), st, sizeof(st)),
	    -1, "unterminated");
	cr_assert_eq(sasl_oauth_error_status(j5, strlen(j5), st, sizeof(st)),
	    -1, "control bytes are refused");
}
