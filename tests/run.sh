#!/bin/bash
# Run every test against the binaries in BUILD (default build/test): the
# Criterion unit suite, then the integration suite (real Dovecot and
# Postfix, fake servers).  Ends with one summary line.
set -u -o pipefail
BUILD=${1:-build/test}
TOP=$(cd "$(dirname "$0")/.." && pwd)
cd "$TOP" || exit 1
export HAUL_BUILD="$TOP/$BUILD"

echo "== unit tests ($BUILD/tests/unit)"
unit_out=$(mktemp)
"$BUILD/tests/unit" --color=never --timeout 60 -S 2>&1 | tee "$unit_out"
unit_rc=$?
syn=$(grep 'Synthesis:' "$unit_out" | tail -n 1)
rm -f "$unit_out"
u_pass=$(echo "$syn" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
u_fail=$(echo "$syn" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
u_crash=$(echo "$syn" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
u_pass=${u_pass:-0}; u_fail=${u_fail:-0}; u_crash=${u_crash:-0}
if [ -z "$syn" ]; then
	echo "unit tests: no summary line (runner crashed?)"
	u_fail=$((u_fail + 1))
fi
u_fail=$((u_fail + u_crash))
[ "$unit_rc" -ne 0 ] && [ "$u_fail" -eq 0 ] && u_fail=1

echo "== fuzz corpus replay"
f_pass=0; f_fail=0
for r in "$BUILD"/fuzz/*-replay; do
	[ -x "$r" ] || continue
	name=$(basename "$r" -replay)
	if "$r" "tests/fuzz/corpus/$name"; then
		f_pass=$((f_pass + 1))
	else
		echo "FAIL fuzz replay $name"
		f_fail=$((f_fail + 1))
	fi
done

echo "== integration tests"
int_out=$(mktemp)
python3 -u tests/integration/run.py --build "$BUILD" 2>&1 | tee "$int_out"
int_rc=$?
line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$int_out" | tail -n 1)
rm -f "$int_out"
i_pass=$(echo "$line" | sed -n 's/^integration: \([0-9]*\) passed.*/\1/p')
i_fail=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p')
i_skip=$(echo "$line" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
i_pass=${i_pass:-0}; i_fail=${i_fail:-0}; i_skip=${i_skip:-0}
if [ -z "$line" ] || { [ "$int_rc" -ne 0 ] && [ "$i_fail" -eq 0 ]; }; then
	echo "integration tests: runner failed (rc=$int_rc)"
	i_fail=$((i_fail + 1))
fi

pass=$((u_pass + i_pass + f_pass))
fail=$((u_fail + i_fail + f_fail))
echo "total: $pass passed, $fail failed, $i_skip skipped"
[ "$fail" -eq 0 ]
