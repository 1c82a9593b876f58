#!/usr/bin/env bash
# Tests of the engine plug-ins, each in its own pinned virtual environment.
#
#   bash scripts/engine_tests.sh            # every engine in .ci/engines/
#   bash scripts/engine_tests.sh trl        # one engine
#
# For ENGINE, .venvs/ENGINE is created on first use (reused after): torch==2.13.0 first
# (a CPU build, so pip fetches no CUDA wheels), then the pinned requirements of
# .ci/engines/ENGINE.txt together with this package, constrained so torch stays as it is.
# Then pytest runs the tests marked ENGINE with ENTROPIC_REQUIRE_ENGINE=ENGINE, which turns
# "engine not importable" from a skip into a failure. The main environment is not touched.
set -uo pipefail
cd "$(dirname "$0")/.."

engines=("$@")
if [ ${#engines[@]} -eq 0 ]; then
    for f in .ci/engines/*.txt; do engines+=("$(basename "$f" .txt)"); done
fi

failed=0
for engine in "${engines[@]}"; do
    req=".ci/engines/$engine.txt"
    if [ ! -f "$req" ]; then
        echo "no pinned requirements for engine '$engine' ($req)" >&2
        failed=1
        continue
    fi
    venv=".venvs/$engine"
    py="$venv/bin/python"
    echo "== engine $engine: environment $venv"
    if [ ! -x "$py" ]; then
        python -m venv "$venv" || { failed=1; continue; }
    fi
    # reinstall only when the pins or the package metadata changed since the last install
    stamp="$venv/.installed"
    want=$(cat "$req" pyproject.toml | sha256sum | cut -d' ' -f1)
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        constraints=$(mktemp)
        echo "torch==2.13.0" >"$constraints"
        if ! { "$py" -m pip install -q --disable-pip-version-check torch==2.13.0 \
            && "$py" -m pip install -q --disable-pip-version-check -c "$constraints" -r "$req" -e ".[dev]"; }; then
            echo "engine $engine: installing its environment failed" >&2
            rm -f "$constraints"
            failed=1
            continue
        fi
        rm -f "$constraints"
        echo "$want" >"$stamp"
    fi
    ENTROPIC_REQUIRE_ENGINE="$engine" "$py" -m pytest -p no:cacheprovider -m "$engine" "tests/engines/$engine"
    status=$?
    if [ "$status" -eq 5 ]; then
        echo "engine $engine: pytest collected no tests (exit 5): failing" >&2
        failed=1
    elif [ "$status" -ne 0 ]; then
        failed=1
    fi
done
exit "$failed"
