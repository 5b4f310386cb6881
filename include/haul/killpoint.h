/* ISC licence; see LICENSE. */
#ifndef HAUL_KILLPOINT_H
#define HAUL_KILLPOINT_H

/*
 * Kill points: named places on the fetch -> deliver -> record -> delete
 * path where the crash tests (tests/crash/, docs/delivery-guarantees.md
 * "Crash testing") SIGKILL hauld, to prove that no step boundary can lose
 * a message.  They exist only in test builds (HAUL_TEST_HOOKS); a release
 * build compiles every KILLPOINT() to nothing.
 *
 * Test builds read, at every hit:
 *   HAUL_KILLPOINT=NAME[:N]    raise(SIGKILL) at the Nth hit (default 1)
 *                              of point NAME; NAME "*" counts the hits of
 *                              every point together (aimed random kills)
 *   HAUL_KILLPOINT_TRACE=FILE  append "NAME N\n" for each hit (N: the
 *                              hit's number for that point), written
 *                              before any kill so the file shows it
 */
#ifdef HAUL_TEST_HOOKS
void	 killpoint_hit(const char *name);
/* The point named prefix + name (a state name, say); both are copied. */
void	 killpoint_hit2(const char *prefix, const char *name);
#define KILLPOINT(name)		killpoint_hit(name)
#define KILLPOINT2(prefix, name) killpoint_hit2(prefix, name)
#else
#define KILLPOINT(name)		do { } while (0)
#define KILLPOINT2(prefix, name) do { } while (0)
#endif

#endif /* HAUL_KILLPOINT_H */
