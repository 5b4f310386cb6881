/* ISC licence; see LICENSE. */
/* F10: the configuration loader on arbitrary file contents. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "haul/config.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	static char	 path[64];
	struct config_errors errs = { NULL, 0 };
	struct config	*cf;
	FILE		*f;

	if (path[0] == '\0')
		snprintf(path, sizeof(path), "/tmp/haul-fuzz-%ld.conf",
		    (long)getpid());
	if ((f = fopen(path, "wb")) == NULL)
		return 0;
	fwrite(d, 1, n, f);
	fclose(f);
	cf = config_load(path, &errs);
	config_free(&cf);
	config_errors_free(&errs);
	unlink(path);
	return 0;
}
