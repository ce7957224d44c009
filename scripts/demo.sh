#!/usr/bin/env bash
# The demo behind `make demo`: the pipeline end to end on this machine.
# 1. prepare dSprites (the built-in generator; reused on later runs),
# 2. train the quick Non-Syn VAE preset (1,500 steps, ~4 min on an idle 2-core CPU),
# 3. evaluate it with every metric and the synergy score (~7 min),
# 4. draw its figures and write its HTML report; print where everything is.
set -euo pipefail
NSVAE="${NSVAE:-.venv/bin/nsvae}"
RUN="${DEMO_RUN:-runs/demo-$(date +%Y%m%d-%H%M%S)}"
start=$(date +%s)

echo "== 1/4 information theory: the XOR gate (pure synergy)"
"$NSVAE" info --example xor
echo
echo "== 2/4 dSprites (generated once, then read from the cache)"
"$NSVAE" data prepare dsprites
echo
echo "== 3/4 training the quick Non-Syn VAE preset into $RUN"
"$NSVAE" train quick-nonsyn --out "$RUN"
echo
echo "== 4/4 evaluating and drawing"
"$NSVAE" evaluate "$RUN"
"$NSVAE" plot curves "$RUN" -o "$RUN/figures/curves.png"
"$NSVAE" plot traversal "$RUN" -o "$RUN/figures/traversal.png"
"$NSVAE" plot mean-activation "$RUN" -o "$RUN/figures/mean-activation.png" --samples 100000
"$NSVAE" report "$RUN"
echo
echo "demo finished in $(( $(date +%s) - start )) s"
echo "run directory:  $RUN  (config.toml, log.jsonl, checkpoints/, eval.json)"
echo "figures:        $RUN/figures/  (curves, traversal, mean-activation)"
echo "report:         $RUN/report.html  (open it in a browser; everything is embedded)"
echo "TensorBoard:    .venv/bin/tensorboard --logdir $RUN/events"
