/* ISC licence; see LICENSE. */
#ifndef HAUL_CONFIG_INT_H
#define HAUL_CONFIG_INT_H

/*
 * Private to lib/config*.c.  One declarative table per section drives
 * everything the loader does with an option: the libconfuse schema is
 * built from it, values are validated and converted into the plain
 * structs of haul/config.h by it, and config_free() releases by it.  No
 * libconfuse type appears here so the tables stay plain data.
 */

#include <stddef.h>
#include <stdint.h>

struct buf;
struct config_account;
struct config_delivery;

/* How libconfuse parses the option. */
enum okind {
	OK_STR,		/* one string */
	OK_ENUM,	/* one string out of opt->names (case-insensitive) */
	OK_UINT,	/* a decimal number within [min, max] */
	OK_BOOL,
	OK_LIST,	/* a list of strings, {"a", "b"} */
};

/* How the value is stored in the struct (what config_free must release). */
enum ftype {
	F_STR,		/* char *, owned */
	F_LIST,		/* char **, NULL-terminated, owned */
	F_UINT,		/* unsigned */
	F_INT,		/* int (booleans, log level) */
	F_ENUM,		/* an enum, stored as int */
	F_U64,		/* uint64_t */
};

#define OPT_REQUIRED	0x01	/* an account must set it */

/*
 * Check one value (idx: position in a list, else 0).  Returns 0, or -1
 * with a reason appended to why ("must be an absolute path").
 */
typedef int	(*check_fn)(const char *s, unsigned idx, struct buf *why);
/* Store a checked string value into obj (the section struct) at off. */
typedef void	(*conv_fn)(const char *s, void *obj, size_t off);

struct optdef {
	const char		*name;
	enum okind		 kind;
	const char		*def;	/* STR/ENUM default; NULL: unset */
	long			 num;	/* UINT/BOOL default */
	long			 min;	/* UINT range, inclusive */
	long			 max;
	const char *const	*names;	/* ENUM: values, index = enum value */
	check_fn		 check;	/* STR values and LIST elements */
	conv_fn			 conv;	/* STR: custom conversion, or NULL */
	enum ftype		 ftype;
	size_t			 off;	/* offsetof() in the section struct */
	int			 flags;
};

struct sectab {
	const char		*name;	/* "global", "account", .. */
	const struct optdef	*opts;
	size_t			 nopts;
};

/* Order of config_sections[]; also the order of the top-level options. */
enum { SEC_GLOBAL, SEC_DELIVERY, SEC_MILTER, SEC_ACCOUNT, SEC_COUNT };
#define CONFIG_MAXOPTS	48	/* no section has more options */

extern const struct sectab	 config_sections[SEC_COUNT];

extern const char *const	 config_proto_names[];
extern const char *const	 config_tls_names[];
extern const char *const	 config_auth_names[];
extern const char *const	 config_delivery_names[];
extern const char *const	 config_on_error_names[];
extern const char *const	 config_unknown_names[];

/* A position in the files of one load. */
struct loc {
	int		 file;		/* index into files; -1: main file */
	unsigned	 line;		/* 0: none (or: not set) */
};

struct errmsg {
	struct loc	 at;
	size_t		 seq;		/* keeps equal positions in order */
	char		*text;
};

/* What the checks of one load share: its files and its error list. */
struct cload {
	const char	*mainpath;
	char	       **files;		/* as opened, NULL-terminated */
	char	       **basedirs;	/* real directory of each, lazily */
	size_t		 nfiles;
	struct errmsg	*errs;
	size_t		 nerrs;
};

/*
 * Where a section and each of its options were set in the files, and
 * which options already had an error (so checks that depend on them stay
 * quiet instead of piling up).
 */
struct seclocs {
	const struct sectab *tab;
	struct loc	 start;			/* the section's '{' */
	struct loc	 loc[CONFIG_MAXOPTS];	/* line 0: left at default */
	unsigned char	 bad[CONFIG_MAXOPTS];
	unsigned char	 listset[CONFIG_MAXOPTS];	/* even "= {}" */
};

/* lib/config_check.c */
/* Record "FILE:LINE: SCOPE: text"; scope may be NULL. */
void	 config_error(struct cload *, struct loc, const char *scope,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* "key = \"value\": reason", with the value escaped. */
void	 config_value_error(struct cload *, struct loc, const char *scope,
	    const char *key, const char *value, const char *reason);
/* s escaped for a message into dst; returns dst. */
const char *config_shown(const char *s, char *dst, size_t len);
/* Check one value against its row; reports and returns -1 if bad. */
int	 config_check_value(struct cload *, const struct optdef *,
	    const char *s, unsigned idx, struct loc, const char *scope);
void	 config_enum_error(struct cload *, const struct optdef *,
	    const char *s, struct loc, const char *scope);
/* Where name was set, else where its section starts. */
struct loc config_where(const struct seclocs *, const char *name);
/* Cross-option checks, once the values are converted. */
void	 config_check_account(struct cload *, struct seclocs *,
	    struct config_account *, const char *scope);
void	 config_check_delivery(struct cload *, struct seclocs *,
	    struct config_delivery *);
/* Report every account name defined twice. */
/* Multidrop is mapped by haul-milter: it needs delivery.via_milter. */
void	 config_check_multidrop_route(struct cload *,
	    const struct config_delivery *, const struct config_account *,
	    const int *files, size_t n);
void	 config_check_duplicates(struct cload *,
	    const struct config_account *, const int *files, size_t n);

/* lib/config_scan.c */
/* What config_prescan() found wrong; 0: nothing. */
struct prescan {
	unsigned	 comment_line;	/* unterminated block comment */
	unsigned	 brace_line;	/* innermost '{' never closed */
};
/* Blank out comments (keeping newlines) and look for open braces. */
void	 config_prescan(char *p, size_t len, struct prescan *);
/* 1-based line of p[i]. */
unsigned config_line_at(const char *p, size_t i);

/* Index of s in a NULL-terminated table (ASCII case-insensitive), or -1. */
int	 config_enum_lookup(const char *const *names, const char *s);
/* Index of an option by name in a section table, or -1. */
int	 config_opt_index(const struct sectab *, const char *name);
/* 1 if s is an acceptable account name: [A-Za-z0-9._-]{1,64}. */
int	 config_valid_account_name(const char *s);
/* Free every owned string and list of obj as described by the table. */
void	 config_free_fields(const struct sectab *, void *obj);

#endif
