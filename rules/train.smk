rule train:
    output:
        json="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/train.json",
        model="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/model.pt",
    params:
        config=train_config,
        label="{paper}/{experiment}/{model}/{point}/seed{seed}",
        attempt=train_attempt,
        outdir="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}",
    log:
        "logs/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/train.log",
    benchmark:
        "benchmarks/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/train.tsv"
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    shell:
        "python -m workflow.run train --config {params.config:q} --out {params.outdir:q}"
        " --device {config[device]} --threads {threads} --label {params.label:q} --attempt={params.attempt:q}"
        " --checkpoint-seconds {config[checkpoint_seconds]} > {log:q} 2>&1"
