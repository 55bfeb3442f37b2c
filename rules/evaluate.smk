rule evaluate:
    input:
        train="results/{scale}/{fit}/train.json",
        model="results/{scale}/{fit}/model.pt",
    output:
        "results/{scale}/{fit}/eval.json",
    params:
        config=eval_config_json,
        dir=fit_dir,
        attempt=eval_attempt,
    log:
        "logs/{scale}/{fit}/evaluate.log",
    benchmark:
        "benchmarks/{scale}/{fit}/evaluate.tsv"
    threads: 1
    conda:
        "../envs/claimcheck.yaml"
    resources:
        gpu=GPU_PER_JOB,
        device=DEVICE,
    shell:
        "python -m workflow.launch evaluate --dir {params.dir:q} --config {params.config:q}"
        " --device {resources.device} --threads {threads} --attempt={params.attempt:q} > {log:q} 2>&1"
