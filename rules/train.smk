rule train:
    output:
        json="results/{scale}/{fit}/train.json",
        model="results/{scale}/{fit}/model.pt",
    params:
        config=train_config_json,
        label="{fit}",
        attempt=train_attempt,
        outdir=fit_dir,
    log:
        "logs/{scale}/{fit}/train.log",
    benchmark:
        "benchmarks/{scale}/{fit}/train.tsv"
    threads: 1
    conda:
        "../envs/claimcheck.yaml"
    resources:
        gpu=GPU_PER_JOB,
        device=DEVICE,
        checkpoint_seconds=CHECKPOINT_SECONDS,
    shell:
        "python -m workflow.launch train --config {params.config:q} --out {params.outdir:q}"
        " --device {resources.device} --threads {threads} --label {params.label:q} --attempt={params.attempt:q}"
        " --checkpoint-seconds {resources.checkpoint_seconds} > {log:q} 2>&1"
