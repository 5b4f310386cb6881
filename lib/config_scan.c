/* ISC licence; see LICENSE. */
/*
 * A pass over a config file before libconfuse sees it.
 *
 * libconfuse 3.3 counts one line too many for every comment (its comment
 * rules bump the line counter on top of the newline rule), so after the
 * first comment every file:line it reports would be wrong.  We blank
 * comments out, keeping their newlines, so it never sees one.  The rules
 * mirror its scanner: nothing inside quotes is a comment, '#' starts one
 * anywhere else, '//' and '/ *' only where a token starts.
 *
 * libconfuse also accepts a file that ends inside a section, so this pass
 * tracks braces and reports the one left open.
 */
#include <string.h>

#include "config_int.h"

#define TOKEN_END	" #\"'\t\n\r={}()+,*"
#define BRACE_STACK	64

static int
token_end(char ch)
{
	return ch == '\0' || strchr(TOKEN_END, ch) != NULL;
}

static void
blank(char *p, size_t from, size_t to)
{
	for (; from < to; from++)
		if (p[from] != '\n')
			p[from] = ' ';
}

/* Skip a quoted string that starts after its quote; returns the index after. */
static size_t
skip_quoted(const char *p, size_t len, size_t i, char quote)
{
	const char	*end;

	while (i < len) {
		if (p[i] == '\\') {
			i += 2;
			continue;
		}
		if (p[i] == quote)
			return i + 1;
		/* "${VAR}" is one scanner token even across quotes. */
		if (quote == '"' && p[i] == '$' && i + 1 < len &&
		    p[i + 1] == '{' &&
		    (end = memchr(p + i + 2, '}', len - i - 2)) != NULL) {
			i = (size_t)(end - p) + 1;
			continue;
		}
		i++;
	}
	return len;
}

static size_t
skip_token(const char *p, size_t len, size_t i)
{
	while (i < len && !token_end(p[i]))
		i++;
	return i;
}

static size_t
eol(const char *p, size_t len, size_t i)
{
	const char	*nl = memchr(p + i, '\n', len - i);

	return nl == NULL ? len : (size_t)(nl - p);
}

unsigned
config_line_at(const char *p, size_t i)
{
	unsigned line = 1;
	size_t	 k;

	for (k = 0; k < i; k++)
		if (p[k] == '\n')
			line++;
	return line;
}

/* Line of p[i], counting on from where the last call stopped (i grows). */
static unsigned
line_upto(const char *p, size_t i, size_t *pos, unsigned *line)
{
	for (; *pos < i; (*pos)++)
		if (p[*pos] == '\n')
			(*line)++;
	return *line;
}

void
config_prescan(char *p, size_t len, struct prescan *out)
{
	const char	*end;
	size_t		 i = 0, j, pos = 0, depth = 0;
	unsigned	 line = 1, open[BRACE_STACK];

	memset(out, 0, sizeof(*out));
	while (i < len) {
		switch (p[i]) {
		case '"':
		case '\'':
			i = skip_quoted(p, len, i + 1, p[i]);
			break;
		case '{':
			if (depth < BRACE_STACK)
				open[depth] = line_upto(p, i, &pos, &line);
			depth++;
			i++;
			break;
		case '}':
			if (depth > 0)
				depth--;
			i++;
			break;
		case '#':
			j = eol(p, len, i);
			blank(p, i, j);
			i = j;
			break;
		case '$':
			if (i + 1 < len && p[i + 1] == '{' &&
			    (end = memchr(p + i + 2, '}', len - i - 2)) != NULL)
				i = (size_t)(end - p) + 1;
			else
				i = skip_token(p, len, i);
			break;
		case '/':
			if (i + 1 < len && p[i + 1] == '*') {
				end = memmem(p + i + 2, len - i - 2, "*/", 2);
				if (end == NULL) {
					out->comment_line =
					    line_upto(p, i, &pos, &line);
					blank(p, i, len);
					i = len;
					break;
				}
				j = (size_t)(end - p) + 2;
				blank(p, i, j);
				i = j;
				break;
			}
			/*
			 * A run of slashes is a comment only where the
			 * scanner's longest match would not make it a word.
			 */
			for (j = i; j < len && p[j] == '/'; j++)
				;
			if (j - i >= 2 && (j == len || token_end(p[j]))) {
				j = eol(p, len, i);
				blank(p, i, j);
				i = j;
			} else
				i = skip_token(p, len, i);
			break;
		default:
			if (token_end(p[i]))
				i++;
			else
				i = skip_token(p, len, i);
			break;
		}
	}
	if (depth > 0)
		out->brace_line = open[(depth < BRACE_STACK ? depth :
		    BRACE_STACK) - 1];
}
