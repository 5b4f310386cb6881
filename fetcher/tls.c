/* ISC licence; see LICENSE. */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "haul/tls.h"
#include "haul/xmalloc.h"

struct ctx_cache {
	char		*ca_file;	/* NULL = system store */
	SSL_CTX		*ctx;
	struct ctx_cache *next;
};

static struct ctx_cache *cache;

static void
add_ssl_error(struct buf *err, unsigned long e)
{
	char	 s[256];

	if (e == 0)
		return;
	ERR_error_string_n(e, s, sizeof(s));
	buf_addf(err, ": %s", s);
}

SSL_CTX *
tls_client_ctx(const char *ca_file, struct buf *err)
{
	struct ctx_cache *c;
	SSL_CTX		*ctx;

	for (c = cache; c != NULL; c = c->next) {
		if ((c->ca_file == NULL && ca_file == NULL) ||
		    (c->ca_file != NULL && ca_file != NULL &&
		    strcmp(c->ca_file, ca_file) == 0))
			return c->ctx;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		buf_addf(err, "SSL_CTX_new failed");
		add_ssl_error(err, ERR_get_error());
		return NULL;
	}
	/* RFC 8996/8997: nothing older than TLS 1.2. */
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/*
	 * Idle sessions hold no buffers: with thousands of IDLE connections
	 * the read/write buffers would dominate memory.
	 */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
			buf_addf(err, "cannot load CA file %s", ca_file);
			add_ssl_error(err, ERR_get_error());
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		buf_addf(err, "cannot load the system CA store");
		add_ssl_error(err, ERR_get_error());
		SSL_CTX_free(ctx);
		return NULL;
	}
	c = xcalloc(1, sizeof(*c));
	c->ca_file = ca_file != NULL ? xstrdup(ca_file) : NULL;
	c->ctx = ctx;
	c->next = cache;
	cache = c;
	return ctx;
}

static int
is_ip_literal(const char *host)
{
	unsigned char	 a[16];

	return inet_pton(AF_INET, host, a) == 1 ||
	    inet_pton(AF_INET6, host, a) == 1;
}

SSL *
tls_client_ssl(SSL_CTX *ctx, const char *host, struct buf *err)
{
	SSL	*ssl;

	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL) {
		buf_addf(err, "SSL_new failed");
		add_ssl_error(err, ERR_get_error());
		return NULL;
	}
	if (is_ip_literal(host)) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1)
			goto fail;
	} else {
		/* Wildcards only as the whole left-most label. */
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (SSL_set1_host(ssl, host) != 1 ||
		    SSL_set_tlsext_host_name(ssl, host) != 1)
			goto fail;
	}
	return ssl;
fail:
	buf_addf(err, "cannot set the expected host name %s", host);
	add_ssl_error(err, ERR_get_error());
	SSL_free(ssl);
	return NULL;
}

int
tls_check_peer(SSL *ssl, const char *fingerprint, struct buf *err)
{
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0, i;
	char		 hex[2 * EVP_MAX_MD_SIZE + 1];
	X509		*cert;
	long		 vr;

	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		buf_addf(err, "server sent no certificate");
		return -1;
	}
	if ((vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		buf_addf(err, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		X509_free(cert);
		return -1;
	}
	if (fingerprint != NULL) {
		if (X509_digest(cert, EVP_sha256(), md, &mdlen) != 1) {
			buf_addf(err, "cannot hash the certificate");
			X509_free(cert);
			return -1;
		}
		for (i = 0; i < mdlen; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		if (strlen(fingerprint) != 2 * mdlen ||
		    CRYPTO_memcmp(hex, fingerprint, 2 * mdlen) != 0) {
			buf_addf(err, "certificate fingerprint %s does not "
			    "match the configured pin", hex);
			X509_free(cert);
			return -1;
		}
	}
	X509_free(cert);
	return 0;
}

void
tls_describe_failure(SSL *ssl, unsigned long e, struct buf *out)
{
	long	 vr;

	if (ssl != NULL && (vr = SSL_get_verify_result(ssl)) != X509_V_OK) {
		buf_addf(out, "certificate verification failed: %s",
		    X509_verify_cert_error_string(vr));
		return;
	}
	buf_addf(out, "TLS handshake failed");
	add_ssl_error(out, e);
}

void
tls_shutdown(void)
{
	struct ctx_cache *c, *next;

	for (c = cache; c != NULL; c = next) {
		next = c->next;
		SSL_CTX_free(c->ctx);
		free(c->ca_file);
		free(c);
	}
	cache = NULL;
}
