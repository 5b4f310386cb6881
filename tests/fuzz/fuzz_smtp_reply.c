/* ISC licence; see LICENSE. */
/* F6: MTA replies (multi-line, codes), chunked by the first byte. */
#include <stdint.h>

#include "haul/smtp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct smtp_reply_parser p;
	struct smtp_ehlo e;
	size_t		 chunk, off = 1, used;
	char		 qid[SMTP_QUEUE_ID_MAX + 1];

	if (n < 1)
		return 0;
	chunk = d[0] ? d[0] : 1;
	smtp_reply_init(&p);
	while (off < n) {
		size_t	 len = n - off < chunk ? n - off : chunk;
		enum smtp_reply_status r = smtp_reply_parse(&p, d + off, len,
		    &used);

		if (r == SMTP_REPLY_BAD)
			break;
		if (r == SMTP_REPLY_OK) {
			smtp_ehlo_parse(&p.reply, &e);
			smtp_parse_queue_id(p.reply.text, p.reply.textlen, qid);
		}
		off += used;
		if (used == 0)
			break;
	}
	return 0;
}
