# Probe the hidden states of a trained model: every probe of its experiment in one job, which
# computes the states once (workflow/probe.py). Only jobs whose experiment lists probes need it.
rule probe:
    input:
        train="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/train.json",
        model="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/model.pt",
    output:
        "results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/probe.json",
    params:
        config=probe_config,
        dir="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}",
        attempt=probe_attempt,
    log:
        "logs/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/probe.log",
    benchmark:
        "benchmarks/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/probe.tsv"
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    shell:
        "python -m workflow.run probe --dir {params.dir:q} --config {params.config:q}"
        " --device {config[device]} --threads {threads} --attempt={params.attempt:q} > {log:q} 2>&1"
