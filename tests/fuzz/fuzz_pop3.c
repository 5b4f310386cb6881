/* ISC licence; see LICENSE. */
/* F5: a server transcript into the whole POP3 machine (chunked). */
#include <stdint.h>
#include <string.h>

#include "haul/pop3.h"

static enum pop3_want
want(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	return msgno % 3 == 0 ? POP3_WANT_DELETE : POP3_WANT_FETCH;
}

static int
begin(void *arg, unsigned msgno, const char *uid, uint64_t size)
{
	return 0;
}

static int
data(void *arg, const void *p, size_t n)
{
	return 0;
}

static int
end(void *arg, unsigned msgno, const char *uid)
{
	return pop3_delete(*(struct pop3 **)arg, msgno) == 0 ? 0 : 0;
}

static void
drained(void *arg)
{
	pop3_finish(*(struct pop3 **)arg);
}

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct pop3_cb	 cb = { .want = want, .msg_begin = begin,
			    .msg_data = data, .msg_end = end,
			    .drained = drained };
	struct pop3_params pp = { .account = "fuzz", .tls = TLS_IMPLICIT,
			    .auth = AUTH_AUTO, .user = "u", .secret = "p",
			    .secret_len = 1, .max_message_size = 1 << 20 };
	struct pop3	*p;
	size_t		 chunk, off = 1, used;

	if (n < 1)
		return 0;
	chunk = d[0] ? d[0] : 1;
	p = pop3_new(&pp, &cb, &p);
	while (off < n) {
		size_t	 len = n - off < chunk ? n - off : chunk;
		enum proto_status st = pop3_input(p, d + off, len, &used);

		buf_reset(pop3_output(p));
		if (st != PS_MORE) {
			if (st == PS_STARTTLS)
				pop3_tls_started(p);
			else
				break;
		}
		off += len;
	}
	pop3_free(&p);
	return 0;
}
