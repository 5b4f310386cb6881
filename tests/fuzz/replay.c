/* ISC licence; see LICENSE. */
/*
 * Replays fuzz corpora without libFuzzer, so every `make test` (gcc, no
 * fuzzer runtime) runs each harness over every saved input.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
run_file(const char *path)
{
	FILE		*f;
	uint8_t		*buf;
	struct stat	 st;
	size_t		 n;

	if (stat(path, &st) == -1 || !S_ISREG(st.st_mode))
		return 0;
	if ((f = fopen(path, "rb")) == NULL)
		return -1;
	buf = malloc((size_t)st.st_size + 1);
	n = fread(buf, 1, (size_t)st.st_size, f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	free(buf);
	return 1;
}

int
main(int argc, char **argv)
{
	int	 i, count = 0;

	for (i = 1; i < argc; i++) {
		DIR		*d = opendir(argv[i]);
		struct dirent	*de;
		char		 p[4096];

		if (d == NULL) {
			count += run_file(argv[i]) > 0;
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", argv[i], de->d_name);
			count += run_file(p) > 0;
		}
		closedir(d);
	}
	printf("%s: %d inputs replayed\n", argv[0], count);
	return 0;
}
