#!/usr/bin/env bash
# The main job, end to end on the demo logos shipped inside the package:
# set up (idempotent), build the index (stats → splits → preprocess → embed → PCA → index),
# evaluate it, and run a few example searches. Prints where everything was written.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
STORE="${LOGOSIM_STORE:-$PWD/out/demo-store}"
export LOGOSIM_STORE="$STORE"
LS=.venv/bin/logosim

$LS build --source demo --store "$STORE"
$LS evaluate --source demo --group-column group --store "$STORE"

# Clusters: UMAP + HDBSCAN on the cached embeddings; tables, folders, pictures, a report.
$LS cluster --source demo --group-column group --store "$STORE" --method both
report=$(ls -t "$STORE"/cluster/*/report.html | head -1)

# Example searches: three demo logos as queries, results as text and as a contact sheet.
queries="$STORE/demo-queries"
.venv/bin/python -m scripts.demo_queries "$queries" 3
$LS search --store "$STORE" -k 5 "$queries"/*.png --sheet "$STORE/search-sheet.png"

echo
echo "Done. Everything is in $STORE"
echo "  stats:        $STORE/stats/stats.json (+ histograms)"
echo "  index:        $STORE/index/"
echo "  metrics:      $STORE/eval/metrics.json"
echo "  search sheet: $STORE/search-sheet.png"
echo "  clusters:     $report (and clusters.csv, clusters/, *.png beside it)"
echo "  errors:       $STORE/errors.jsonl"
