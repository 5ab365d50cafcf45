# the default run from a cold cache (an empty user cache: the fused kernels are built and the
# teacher's masked-LM head fitted first), at the AVX2 tier: the kernels built with
# -march=x86-64-v3 and capped at avx2, MXNet's oneDNN capped at AVX2; peak RSS of the process
# tree sampled every 0.5 s (1,736,912 kB)
env XDG_CACHE_HOME="$(mktemp -d)" BORTKIT_MARCH=x86-64-v3 BORTKIT_ISA=avx2 DNNL_MAX_CPU_ISA=AVX2 \
    /usr/bin/time -v python -m bortkit.search --max-params 56M --output-dir out --no-progress
