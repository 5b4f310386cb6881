/* ISC License; see LICENSE. */
/*
 * limit: the benchmark's reference client.  It reads a whole mailbox over
 * implicit TLS (certificate and host name verified against a CA file) and
 * throws the bytes away: IMAP with one `UID FETCH 1:* BODY.PEEK[]`, POP3
 * with every `RETR` pipelined (a window of commands in flight).  Nothing
 * is parsed beyond what finding the message boundaries needs, nothing is
 * stored, nothing is delivered: what it reaches is what the server and
 * TLS allow on this machine, the "limit" every fetcher is measured
 * against in the same run (bench/bench.py).
 *
 *   limit -p imap|pop3 -H host -N tls-name -P port -C ca-file
 *         -u user -w password-file [-W window]
 *
 * Prints "messages=N bytes=B" (B: message octets as the server sent
 * them, before dot-unstuffing) and exits 0; anything unexpected is a
 * message on stderr and exit 1.  Blocking I/O, one connection.
 */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define RBUF (256 * 1024)

static SSL *ssl;
static char rbuf[RBUF];
static size_t rpos, rlen;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
    noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("limit: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* Refill the read buffer (keeping what is unread); 0 at EOF. */
static int
fill(void)
{
	int n;

	if (rpos > 0) {
		memmove(rbuf, rbuf + rpos, rlen - rpos);
		rlen -= rpos;
		rpos = 0;
	}
	if (rlen == sizeof(rbuf))
		die("line too long");
	n = SSL_read(ssl, rbuf + rlen, (int)(sizeof(rbuf) - rlen));
	if (n <= 0)
		return 0;
	rlen += (size_t)n;
	return 1;
}

/* The next line (CRLF included) in *line, *len; dies at EOF. */
static void
getline_(const char **line, size_t *len)
{
	char *nl;

	for (;;) {
		nl = memchr(rbuf + rpos, '\n', rlen - rpos);
		if (nl != NULL)
			break;
		if (!fill())
			die("connection closed by the server");
	}
	*line = rbuf + rpos;
	*len = (size_t)(nl + 1 - (rbuf + rpos));
	rpos += *len;
}

/* Read and drop n octets (a literal). */
static void
skip(unsigned long long n)
{
	while (n > 0) {
		size_t have = rlen - rpos;

		if (have == 0) {
			rpos = rlen = 0;
			if (!fill())
				die("connection closed inside a literal");
			continue;
		}
		if (have > n)
			have = (size_t)n;
		rpos += have;
		n -= have;
	}
}

static void
put(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		die("command too long");
	if (SSL_write(ssl, buf, n) != n)
		die("write failed");
}

/* IMAP: read until the line tagged tag; dies unless it is OK.  Literals
 * ({n} at a line end) are skipped and, when count is set, counted. */
static void
imap_wait(const char *tag, unsigned long long *msgs,
    unsigned long long *bytes)
{
	size_t tl = strlen(tag);
	const char *l;
	size_t n;

	for (;;) {
		getline_(&l, &n);
		if (n >= 3 && l[n - 2] == '\r' && l[n - 3] == '}') {
			const char *b = l + n - 3;
			unsigned long long sz;

			while (b > l && *b != '{')
				b--;
			sz = strtoull(b + 1, NULL, 10);
			skip(sz);
			if (msgs != NULL) {
				(*msgs)++;
				*bytes += sz;
			}
			continue;
		}
		if (n > tl && memcmp(l, tag, tl) == 0 && l[tl] == ' ') {
			if (n < tl + 3 || memcmp(l + tl + 1, "OK", 2) != 0)
				die("%s: %.*s", tag, (int)n, l);
			return;
		}
	}
}

static void
imap(const char *user, const char *pass, unsigned long long *msgs,
    unsigned long long *bytes)
{
	const char *l;
	size_t n;

	getline_(&l, &n);
	if (n < 4 || memcmp(l, "* OK", 4) != 0)
		die("greeting: %.*s", (int)n, l);
	put("a LOGIN \"%s\" \"%s\"\r\n", user, pass);
	imap_wait("a", NULL, NULL);
	put("b SELECT INBOX\r\n");
	imap_wait("b", NULL, NULL);
	put("c UID FETCH 1:* BODY.PEEK[]\r\n");
	imap_wait("c", msgs, bytes);
	put("d LOGOUT\r\n");
	imap_wait("d", NULL, NULL);
}

static void
pop3_ok(const char *what)
{
	const char *l;
	size_t n;

	getline_(&l, &n);
	if (n < 3 || memcmp(l, "+OK", 3) != 0)
		die("%s: %.*s", what, (int)n, l);
}

static void
pop3(const char *user, const char *pass, int window,
    unsigned long long *msgs, unsigned long long *bytes)
{
	const char *l;
	size_t n;
	unsigned long count, sent = 0, done = 0;

	pop3_ok("greeting");
	put("USER %s\r\n", user);
	pop3_ok("USER");
	put("PASS %s\r\n", pass);
	pop3_ok("PASS");
	put("STAT\r\n");
	getline_(&l, &n);
	if (n < 4 || memcmp(l, "+OK ", 4) != 0)
		die("STAT: %.*s", (int)n, l);
	count = strtoul(l + 4, NULL, 10);
	while (done < count) {
		char cmds[64 * 16];
		size_t cl = 0;

		while (sent < count && sent - done < (unsigned long)window &&
		    cl + 16 < sizeof(cmds))
			cl += (size_t)snprintf(cmds + cl, sizeof(cmds) - cl,
			    "RETR %lu\r\n", ++sent);
		if (cl > 0 && SSL_write(ssl, cmds, (int)cl) != (int)cl)
			die("write failed");
		pop3_ok("RETR");
		for (;;) {
			getline_(&l, &n);
			if (n == 3 && l[0] == '.' && l[1] == '\r')
				break;
			*bytes += n;
		}
		(*msgs)++;
		done++;
	}
	put("QUIT\r\n");
	pop3_ok("QUIT");
}

static char *
read_password(const char *path)
{
	static char pw[512];
	FILE *f = fopen(path, "r");

	if (f == NULL || fgets(pw, sizeof(pw), f) == NULL)
		die("%s: cannot read", path);
	fclose(f);
	pw[strcspn(pw, "\r\n")] = '\0';
	return pw;
}

int
main(int argc, char **argv)
{
	const char *proto = NULL, *host = "127.0.0.1", *name = "localhost";
	const char *port = NULL, *ca = NULL, *user = NULL, *pwfile = NULL;
	unsigned long long msgs = 0, bytes = 0;
	struct addrinfo hints, *ai;
	SSL_CTX *ctx;
	int c, fd, one = 1, window = 64;

	while ((c = getopt(argc, argv, "p:H:N:P:C:u:w:W:")) != -1) {
		switch (c) {
		case 'p': proto = optarg; break;
		case 'H': host = optarg; break;
		case 'N': name = optarg; break;
		case 'P': port = optarg; break;
		case 'C': ca = optarg; break;
		case 'u': user = optarg; break;
		case 'w': pwfile = optarg; break;
		case 'W': window = atoi(optarg); break;
		default: die("bad option");
		}
	}
	if (proto == NULL || port == NULL || ca == NULL || user == NULL ||
	    pwfile == NULL || window < 1 || window > 64)
		die("usage: limit -p imap|pop3 -H host -N tls-name -P port "
		    "-C ca-file -u user -w password-file [-W 1..64]");

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		die("%s: cannot resolve", host);
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		die("connect %s:%s: %s", host, port, strerror(errno));
	freeaddrinfo(ai);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	ctx = SSL_CTX_new(TLS_client_method());
	if (ctx == NULL ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		die("TLS set-up");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ssl = SSL_new(ctx);
	if (ssl == NULL || !SSL_set1_host(ssl, name) ||
	    !SSL_set_tlsext_host_name(ssl, name) || !SSL_set_fd(ssl, fd))
		die("TLS set-up");
	if (SSL_connect(ssl) != 1)
		die("TLS handshake with %s failed", name);

	if (strcmp(proto, "imap") == 0)
		imap(user, read_password(pwfile), &msgs, &bytes);
	else if (strcmp(proto, "pop3") == 0)
		pop3(user, read_password(pwfile), window, &msgs, &bytes);
	else
		die("protocol must be imap or pop3");

	printf("messages=%llu bytes=%llu\n", msgs, bytes);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	return 0;
}
