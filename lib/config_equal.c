/* ISC licence; see LICENSE. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "haul/config.h"
#include "config_int.h"

/*
 * Comparing and exchanging settings for a configuration reload.  Both
 * walk the same option tables the loader fills the structs from, so an
 * option added to a table is compared (and swapped) without touching this
 * file; tests/lib/test_config_equal.c fails when a struct grows a field
 * the tables do not describe.
 */

static int
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static int
list_eq(char *const *a, char *const *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	for (; *a != NULL && *b != NULL; a++, b++)
		if (strcmp(*a, *b) != 0)
			return 0;
	return *a == NULL && *b == NULL;
}

/* Bytes a field of this type takes in the struct. */
static size_t
ftype_size(enum ftype t)
{
	switch (t) {
	case F_STR: return sizeof(char *);
	case F_LIST: return sizeof(char **);
	case F_UINT: return sizeof(unsigned);
	case F_INT: return sizeof(int);
	case F_ENUM: return sizeof(int);
	case F_U64: return sizeof(uint64_t);
	}
	return 0;
}

/* 1 if option o holds the same value in the section structs a and b. */
static int
field_eq(const struct optdef *o, const void *a, const void *b)
{
	const char	*pa = (const char *)a + o->off;
	const char	*pb = (const char *)b + o->off;

	switch (o->ftype) {
	case F_STR:
		return str_eq(*(char *const *)(const void *)pa,
		    *(char *const *)(const void *)pb);
	case F_LIST:
		return list_eq(*(char **const *)(const void *)pa,
		    *(char **const *)(const void *)pb);
	default:
		/* Plain numbers: compare the bytes of the value. */
		return memcmp(pa, pb, ftype_size(o->ftype)) == 0;
	}
}

static void
field_swap(const struct optdef *o, void *a, void *b)
{
	char	 tmp[sizeof(uint64_t) > sizeof(void *) ? sizeof(uint64_t) :
		    sizeof(void *)];
	char	*pa = (char *)a + o->off, *pb = (char *)b + o->off;
	size_t	 n = ftype_size(o->ftype);

	memcpy(tmp, pa, n);
	memcpy(pa, pb, n);
	memcpy(pb, tmp, n);
}

static int
section_eq(const struct sectab *t, const void *a, const void *b)
{
	size_t	 i;

	for (i = 0; i < t->nopts; i++)
		if (!field_eq(&t->opts[i], a, b))
			return 0;
	return 1;
}

int
config_account_equal(const struct config_account *a,
    const struct config_account *b)
{
	return str_eq(a->name, b->name) &&
	    section_eq(&config_sections[SEC_ACCOUNT], a, b);
}

int
config_delivery_equal(const struct config_delivery *a,
    const struct config_delivery *b)
{
	/* The fixed address rides on the envelope_from option. */
	return section_eq(&config_sections[SEC_DELIVERY], a, b) &&
	    str_eq(a->envelope_from_address, b->envelope_from_address);
}

static size_t
section_diff(const struct sectab *t, const void *a, const void *b,
    const char **names, size_t max)
{
	size_t		 i, n = 0;

	for (i = 0; i < t->nopts; i++) {
		if (field_eq(&t->opts[i], a, b))
			continue;
		if (n < max)
			names[n] = t->opts[i].name;
		n++;
	}
	return n;
}

static int
section_swap(const struct sectab *t, void *a, void *b, const char *name)
{
	int	 i;

	if ((i = config_opt_index(t, name)) == -1)
		return -1;
	field_swap(&t->opts[i], a, b);
	return 0;
}

size_t
config_global_diff(const struct config_global *a,
    const struct config_global *b, const char **names, size_t max)
{
	return section_diff(&config_sections[SEC_GLOBAL], a, b, names, max);
}

int
config_global_swap(struct config_global *a, struct config_global *b,
    const char *name)
{
	return section_swap(&config_sections[SEC_GLOBAL], a, b, name);
}

size_t
config_delivery_diff(const struct config_delivery *a,
    const struct config_delivery *b, const char **names, size_t max)
{
	size_t	 n;

	n = section_diff(&config_sections[SEC_DELIVERY], a, b, names, max);
	/* The fixed address is part of the envelope_from option. */
	if (str_eq(a->envelope_from_address, b->envelope_from_address) ||
	    a->envelope_from != b->envelope_from)
		return n;
	if (n < max)
		names[n] = "envelope_from";
	return n + 1;
}

int
config_delivery_swap(struct config_delivery *a, struct config_delivery *b,
    const char *name)
{
	char	*tmp;

	if (section_swap(&config_sections[SEC_DELIVERY], a, b, name) == -1)
		return -1;
	if (strcmp(name, "envelope_from") == 0) {
		tmp = a->envelope_from_address;
		a->envelope_from_address = b->envelope_from_address;
		b->envelope_from_address = tmp;
	}
	return 0;
}

void
config_account_clear(struct config_account *a)
{
	config_free_fields(&config_sections[SEC_ACCOUNT], a);
	free(a->name);
	memset(a, 0, sizeof(*a));
}

size_t
config_account_field_bytes(void)
{
	const struct sectab *t = &config_sections[SEC_ACCOUNT];
	size_t		 i, n = 0;

	for (i = 0; i < t->nopts; i++)
		n += ftype_size(t->opts[i].ftype);
	return n;
}

size_t
config_global_field_bytes(void)
{
	const struct sectab *t = &config_sections[SEC_GLOBAL];
	size_t		 i, n = 0;

	for (i = 0; i < t->nopts; i++)
		n += ftype_size(t->opts[i].ftype);
	return n;
}

size_t
config_delivery_field_bytes(void)
{
	const struct sectab *t = &config_sections[SEC_DELIVERY];
	size_t		 i, n = 0;

	for (i = 0; i < t->nopts; i++)
		n += ftype_size(t->opts[i].ftype);
	return n;
}
