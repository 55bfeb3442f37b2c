# Probe the hidden states of a trained model: every probe of its experiment in one job, which
# computes the states once (workflow/probe.py). Only jobs whose experiment lists probes need it.
rule probe:
    input:
        train="results/{scale}/{fit}/train.json",
        model="results/{scale}/{fit}/model.pt",
    output:
        "results/{scale}/{fit}/probe.json",
    params:
        config=probe_config_json,
        dir=fit_dir,
        attempt=probe_attempt,
    log:
        "logs/{scale}/{fit}/probe.log",
    benchmark:
        "benchmarks/{scale}/{fit}/probe.tsv"
    threads: 1
    conda:
        "../envs/claimcheck.yaml"
    resources:
        gpu=GPU_PER_JOB,
        device=DEVICE,
    shell:
        "python -m workflow.launch probe --dir {params.dir:q} --config {params.config:q}"
        " --device {resources.device} --threads {threads} --attempt={params.attempt:q} > {log:q} 2>&1"
