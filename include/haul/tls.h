/* ISC licence; see LICENSE. */
#ifndef HAUL_TLS_H
#define HAUL_TLS_H

#include <openssl/ssl.h>

#include "haul/buf.h"

/*
 * TLS client contexts: TLS 1.2 or later, peer verification on, against
 * the system CAs or one CA file.  Contexts are cached per CA file for the
 * life of the process (thousands of accounts share a handful).
 * Returns a borrowed pointer, or NULL with a reason in err.
 */
SSL_CTX	*tls_client_ctx(const char *ca_file, struct buf *err);

/*
 * A client SSL for host: SNI (names only) and host-name / IP-address
 * verification by OpenSSL's own checks (RFC 6125 via SSL_set1_host /
 * X509_VERIFY_PARAM_set1_ip_asc).  Caller owns the result.
 */
SSL	*tls_client_ssl(SSL_CTX *, const char *host, struct buf *err);

/*
 * After the handshake: the verification result must be X509_V_OK and,
 * if fingerprint (64 lower-case hex digits of SHA-256 over the DER
 * certificate) is set, the peer certificate must match it.
 * Returns 0, or -1 with a reason in err.
 */
int	 tls_check_peer(SSL *, const char *fingerprint, struct buf *err);

/* Describe why a handshake failed (verification error or SSL error). */
void	 tls_describe_failure(SSL *, unsigned long ssl_err, struct buf *out);

/* Free every cached context (at exit, for leak checkers). */
void	 tls_shutdown(void);

#endif
