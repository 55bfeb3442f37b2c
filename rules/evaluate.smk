rule evaluate:
    input:
        train="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/train.json",
        model="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/model.pt",
    output:
        "results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/eval.json",
    params:
        config=eval_config,
        dir="results/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}",
        attempt=eval_attempt,
    log:
        "logs/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/evaluate.log",
    benchmark:
        "benchmarks/{scale}/{paper}/{experiment}/{model}/{point}/seed{seed}/evaluate.tsv"
    threads: 1
    resources:
        gpu=GPU_PER_JOB,
    shell:
        "python -m workflow.run evaluate --dir {params.dir:q} --config {params.config:q}"
        " --device {config[device]} --threads {threads} --attempt={params.attempt:q} > {log:q} 2>&1"
