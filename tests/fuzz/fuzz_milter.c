/* ISC licence; see LICENSE. */
/*
 * F12: the milter-side header handling (plugin/decide.c): hostile header
 * sequences, duplicated, folded and forged X-Haul-* fields, and a genuine
 * token among them, through md_add_header()/md_add_rcpt()/md_decide().
 *
 * decide.c lives in haul-milter's library, which the fuzz and replay
 * builds do not link, so it is compiled into this harness.
 *
 * Input: NUL-separated records.  "Hname:value" adds a header field (the
 * value as the MTA would pass it: CR, LF, folding, any bytes), "Rrcpt"
 * adds a recipient, "Tx" adds a genuine X-Haul-Token for account acme
 * (x: 'f' folded, 'l' lower-case name, else plain), "Dname" sets the
 * daemon name.
 *
 * Properties (abort() on violation):
 * - a token verified (account set) only if exactly one X-Haul-Token field
 *   (any case) was given: a duplicate never passes (CVE-2022-48521
 *   lesson);
 * - every header removal targets an X-Haul-* name or the trace header;
 *   every added value holds no NUL or CR, and a LF only as folding
 *   ("\n\t" or "\n ");
 * - reason is printable ASCII without '%'.
 */
#include "../../plugin/decide.c"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static char *acme_to[] = { "alice@local.test", "bob@local.test", NULL };
static char *md_domains[] = { "example.org", NULL };

static int
is_ci_prefix(const char *s, const char *prefix)
{
	return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static struct config_account accts[2];
	static struct config cf;
	static struct haul_key key;
	static struct md_policy pol;
	static int	 ready;
	struct md_msg	*m;
	struct md_result res;
	char		*copy, *rec;
	size_t		 off = 0, i, ntok = 0;

	if (!ready) {
		unsigned char	 raw[32];

		memset(raw, 9, sizeof(raw));
		key_from_bytes(&key, raw, sizeof(raw));
		cf.delivery.placeholder_domain = "fetch.invalid";
		cf.milter.token_max_age = 600;
		cf.milter.trace_header = "X-Haul-Trace";
		cf.milter.on_error = ON_ERROR_TEMPFAIL;
		accts[0].name = "acme";
		accts[0].deliver_to = acme_to;
		accts[1].name = "md";
		accts[1].multidrop = 1;
		accts[1].multidrop_header = "Delivered-To";
		accts[1].multidrop_hop = 1;
		accts[1].multidrop_domains = md_domains;
		accts[1].multidrop_rewrite_domain = "local.test";
		accts[1].multidrop_unknown = UNKNOWN_REJECT;
		cf.accounts = accts;
		cf.naccounts = 2;
		md_policy_init(&pol, &cf, &key, 1);
		ready = 1;
	}
	copy = malloc(n + 1);
	memcpy(copy, d, n);
	copy[n] = '\0';
	m = md_msg_new();
	md_set_daemon_name(m, "fetch");
	while (off < n) {
		rec = copy + off;
		off += strlen(rec) + 1;
		switch (rec[0]) {
		case 'H': {
			char	*colon = strchr(rec + 1, ':');

			if (colon == NULL)
				break;
			*colon = '\0';
			if (strcasecmp(rec + 1, "X-Haul-Token") == 0)
				ntok++;
			md_add_header(m, &pol, rec + 1, colon + 1);
			break;
		}
		case 'R':
			md_add_rcpt(m, &pol, rec + 1);
			break;
		case 'D':
			md_set_daemon_name(m, rec + 1);
			break;
		case 'T': {
			struct token_fields f;
			struct buf	 v;

			memset(&f, 0, sizeof(f));
			snprintf(f.account, sizeof(f.account), "%s", "md");
			if (rec[1] != 'm')
				snprintf(f.account, sizeof(f.account), "%s", "acme");
			snprintf(f.mailbox, sizeof(f.mailbox), "%s", "INBOX");
			snprintf(f.uid, sizeof(f.uid), "%s", "000001-abc");
			f.time = 1700000000;
			buf_init(&v, 0);
			if (rec[1] == 'f')
				buf_add(&v, "\r\n\t", 3);
			if (token_make(&key, &f, &v) == 0) {
				buf_add_byte(&v, '\0');
				ntok++;
				md_add_header(m, &pol, rec[1] == 'l' ?
				    "x-haul-token" : "X-Haul-Token", v.data);
			}
			buf_free(&v);
			break;
		}
		default:
			break;
		}
	}
	memset(&res, 0, sizeof(res));
	md_decide(&pol, m, 1700000100, "ABC123", &res);
#ifdef FUZZ_DEBUG
	fprintf(stderr, "verdict %s account '%s' reason '%s' actions %zu\n",
	    md_verdict_name(res.verdict), res.account, res.reason, res.nacts);
#endif
	if (res.account[0] != '\0' && ntok != 1)
		abort();
	for (i = 0; res.reason[i] != '\0'; i++)
		if (res.reason[i] < 0x20 || res.reason[i] > 0x7e ||
		    res.reason[i] == '%')
			abort();
	for (i = 0; i < res.nacts; i++) {
		const struct md_action *a = &res.acts[i];
		const char	*v;

		if (a->kind == MD_ACT_DELHDR && !is_ci_prefix(a->name,
		    "X-Haul-") && strcasecmp(a->name, "X-Haul-Trace") != 0)
			abort();
		if (a->kind != MD_ACT_ADDHDR || a->value == NULL)
			continue;
		for (v = a->value; *v != '\0'; v++) {
			if (*v == '\r')
				abort();
			if (*v == '\n' && v[1] != '\t' && v[1] != ' ')
				abort();
		}
	}
	md_result_free(&res);
	md_msg_free(&m);
	free(copy);
	return 0;
}
