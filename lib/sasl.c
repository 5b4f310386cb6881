/* ISC licence; see LICENSE. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "haul/base64.h"
#include "haul/buf.h"
#include "haul/sasl.h"
#include "haul/str.h"

/* 1 if s is a usable identity string: bounded and free of control bytes. */
static int
field_ok(const char *s, int may_be_empty)
{
	size_t	 n;

	if (s == NULL)
		return 0;
	n = strnlen(s, SASL_FIELD_MAX + 1);
	if (n > SASL_FIELD_MAX || (n == 0 && !may_be_empty))
		return 0;
	return !str_has_ctl(s, n);
}

/* 1 if a password is usable: bounded, non-empty, and without NUL. */
static int
secret_ok(const void *secret, size_t len)
{
	if (secret == NULL || len == 0 || len > SASL_SECRET_MAX)
		return 0;
	return memchr(secret, '\0', len) == NULL;
}

/*
 * Start the private raw buffer with exactly n octets reserved, so the
 * secret is written once into storage that never moves.
 */
static int
raw_begin(struct buf *raw, size_t n)
{
	buf_init(raw, n);
	return buf_reserve(raw, n);
}

/*
 * Append base64(raw) to out, reserving the room first so the encoded
 * secret is not copied by a later realloc, then wipe raw.
 */
static int
raw_finish(struct buf *out, struct buf *raw)
{
	int	 rv = -1;

	if (buf_reserve(out, BASE64_ENCODED_LEN(raw->len)) == 0)
		rv = base64_encode(out, raw->data, raw->len, 0);
	buf_free_secret(raw);
	return rv;
}

int
sasl_bearer_valid(const void *token, size_t len)
{
	const unsigned char *t = token;
	size_t	 i = 0;

	if (token == NULL || len == 0 || len > SASL_SECRET_MAX)
		return 0;
	for (; i < len; i++) {
		unsigned char c = t[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~' || c == '+' || c == '/')
			continue;
		break;
	}
	if (i == 0)
		return 0;
	for (; i < len; i++)
		if (t[i] != '=')
			return 0;
	return 1;
}

int
sasl_plain(struct buf *out, const char *authzid, const char *user,
    const void *secret, size_t secretlen)
{
	struct buf	 raw;
	size_t		 zlen, ulen;

	if (authzid == NULL)
		authzid = "";
	if (!field_ok(authzid, 1) || !field_ok(user, 0) ||
	    !secret_ok(secret, secretlen))
		return -1;
	zlen = strlen(authzid);
	ulen = strlen(user);
	if (raw_begin(&raw, zlen + 1 + ulen + 1 + secretlen) == -1)
		return -1;
	buf_add(&raw, authzid, zlen);
	buf_add_byte(&raw, '\0');
	buf_add(&raw, user, ulen);
	buf_add_byte(&raw, '\0');
	buf_add(&raw, secret, secretlen);
	return raw_finish(out, &raw);
}

int
sasl_login(struct buf *out, const void *data, size_t len)
{
	struct buf	 raw;

	if (!secret_ok(data, len))
		return -1;
	if (raw_begin(&raw, len) == -1)
		return -1;
	buf_add(&raw, data, len);
	return raw_finish(out, &raw);
}

int
sasl_xoauth2(struct buf *out, const char *user, const void *token,
    size_t tokenlen)
{
	struct buf	 raw;
	size_t		 ulen;

	if (!field_ok(user, 0) || !sasl_bearer_valid(token, tokenlen))
		return -1;
	ulen = strlen(user);
	if (raw_begin(&raw, 5 + ulen + 1 + 12 + tokenlen + 2) == -1)
		return -1;
	buf_add(&raw, "user=", 5);
	buf_add(&raw, user, ulen);
	buf_add(&raw, "\001auth=Bearer ", 13);
	buf_add(&raw, token, tokenlen);
	buf_add(&raw, "\001\001", 2);
	return raw_finish(out, &raw);
}

int
sasl_oauthbearer(struct buf *out, const char *user, const char *host,
    unsigned port, const void *token, size_t tokenlen)
{
	struct buf	 raw;
	char		 portstr[16];
	size_t		 n, i, ulen = 0, hlen = 0, plen = 0;

	if ((user != NULL && !field_ok(user, 0)) ||
	    (host != NULL && !field_ok(host, 0)) ||
	    !sasl_bearer_valid(token, tokenlen))
		return -1;
	n = 2 + 1;					/* "n," ... "," */
	if (user != NULL) {
		ulen = strlen(user);
		n += 2 + ulen;				/* "a=" user */
		for (i = 0; i < ulen; i++)
			if (user[i] == ',' || user[i] == '=')
				n += 2;			/* "=2C", "=3D" */
	}
	if (host != NULL) {
		hlen = strlen(host);
		n += 1 + 5 + hlen;			/* ^A "host=" */
	}
	if (port != 0) {
		plen = (size_t)snprintf(portstr, sizeof(portstr), "%u", port);
		n += 1 + 5 + plen;			/* ^A "port=" */
	}
	n += 1 + 12 + tokenlen + 2;			/* ^A "auth=Bearer " ^A^A */
	if (raw_begin(&raw, n) == -1)
		return -1;
	buf_add(&raw, "n,", 2);
	if (user != NULL) {
		buf_add(&raw, "a=", 2);
		for (i = 0; i < ulen; i++) {
			if (user[i] == ',')
				buf_add(&raw, "=2C", 3);
			else if (user[i] == '=')
				buf_add(&raw, "=3D", 3);
			else
				buf_add_byte(&raw, (unsigned char)user[i]);
		}
	}
	buf_add_byte(&raw, ',');
	if (host != NULL) {
		buf_add(&raw, "\001host=", 6);
		buf_add(&raw, host, hlen);
	}
	if (port != 0) {
		buf_add(&raw, "\001port=", 6);
		buf_add(&raw, portstr, plen);
	}
	buf_add(&raw, "\001auth=Bearer ", 13);
	buf_add(&raw, token, tokenlen);
	buf_add(&raw, "\001\001", 2);
	return raw_finish(out, &raw);
}

int
sasl_decode_challenge(struct buf *out, const char *b64, size_t len,
    size_t max)
{
	size_t	 start = out->len;

	if (len == 0)
		return 0;
	/* Refuse before decoding anything that cannot fit. */
	if (len / 4 > max / 3 + 1)
		return -1;
	if (base64_decode(out, b64, len, 0) == -1)
		return -1;
	if (out->len - start > max) {
		out->len = start;
		out->data[start] = '\0';
		return -1;
	}
	return 0;
}

int
sasl_oauth_error_status(const void *json, size_t len, char *dst,
    size_t dstsz)
{
	static const char key[] = "\"status\"";
	const unsigned char *j = json;
	size_t	 i, k, o;

	if (dstsz == 0 || json == NULL)
		return -1;
	for (i = 0; i + sizeof(key) - 1 <= len; i++) {
		if (memcmp(j + i, key, sizeof(key) - 1) != 0)
			continue;
		k = i + sizeof(key) - 1;
		while (k < len && (j[k] == ' ' || j[k] == '\t' ||
		    j[k] == '\r' || j[k] == '\n'))
			k++;
		if (k >= len || j[k] != ':')
			continue;
		k++;
		while (k < len && (j[k] == ' ' || j[k] == '\t' ||
		    j[k] == '\r' || j[k] == '\n'))
			k++;
		if (k >= len || j[k] != '"')
			continue;
		for (k++, o = 0; k < len && j[k] != '"'; k++) {
			if (j[k] < 0x20 || j[k] > 0x7e || j[k] == '\\')
				return -1;
			if (o + 1 < dstsz)
				dst[o++] = (char)j[k];
		}
		if (k >= len)
			return -1;
		dst[o] = '\0';
		return 0;
	}
	return -1;
}
