#!/bin/bash
cd /work/main
python3 -c "while True: pass" & h1=$!
python3 -c "while True: pass" & h2=$!
echo "hogs $h1 $h2" > /tmp/s23/load.out
start=$(date +%s)
.venv/bin/python -m bortkit.search --max-params 56M --output-dir /tmp/s23/loaded --no-progress >> /tmp/s23/load.out 2> /tmp/s23/load.err
echo "rc=$? wall=$(( $(date +%s) - start ))s" >> /tmp/s23/load.out
kill $h1 $h2
