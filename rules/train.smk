rule train:
    output:
        json="results/{scale}/{fit}/train.json",
        model="results/{scale}/{fit}/model.pt",
    params:
        config=train_config_json,
        label="{fit}",
        attempt=train_attempt,
        outdir="results/{scale}/{fit}",
    log:
        "logs/{scale}/{fit}/train.log",
    benchmark:
        "benchmarks/{scale}/{fit}/train.tsv"
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    shell:
        "python -m workflow.run train --config {params.config:q} --out {params.outdir:q}"
        " --device {config[device]} --threads {threads} --label {params.label:q} --attempt={params.attempt:q}"
        " --checkpoint-seconds {config[checkpoint_seconds]} > {log:q} 2>&1"
