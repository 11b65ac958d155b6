#!/usr/bin/env bash
# Proves an optimisation changed no output byte: converts every corpus input (each build
# directory, each console log, each install log alone) with two buildlog binaries and
# compares the outputs' SHA-256 sums.
#
#   benches/same-output.sh BASE_BINARY NEW_BINARY     # compare two builds
#   benches/same-output.sh --sums BINARY > sums.txt   # write the sums of one build
#   benches/same-output.sh --check sums.txt BINARY    # compare a build with stored sums
#
# Run from the repository root: `source.file` in the events holds the paths as given.
set -euo pipefail
cd "$(dirname "$0")/.."

sums() {
    local bin=$1 input
    for input in tests/fixtures/corpus/*/ tests/fixtures/corpus/*.log \
        tests/fixtures/corpus/*/*-install.log; do
        input=${input%/}
        printf '%s  %s\n' "$("$bin" convert "$input" 2>/dev/null | sha256sum | cut -c1-64)" "$input"
    done
}

case "${1:-}" in
--sums) sums "$2" ;;
--check) diff -u "$2" <(sums "$3") && echo "identical: $(wc -l <"$2") inputs" ;;
"" | -h | --help) sed -n '2,10p' "$0"; exit 2 ;;
*) diff -u <(sums "$1") <(sums "$2") && echo "identical: every corpus input" ;;
esac
