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


# A fit that another job trains alike (the same resolved config and seed: COPY_OF, rules/common.smk)
# is not trained twice: this rule copies that fit's record and model into its folder (a second, in
# this process: a localrule, no cluster job). Its record says what it copies (train.json: copy_of).
# A change to the config, or a rerun of the shared fit, reruns the copy.
ruleorder: copy_fit > train


rule copy_fit:
    input:
        unpack(copy_source),
    output:
        json="results/{scale}/{fit}/train.json",
        model="results/{scale}/{fit}/model.pt",
    wildcard_constraints:
        fit=COPY_FITS,
    params:
        config=train_config_json,
        label="{fit}",
        attempt=train_attempt,
        outdir=fit_dir,
        src=copy_source_dir,
    log:
        "logs/{scale}/{fit}/train.log",
    benchmark:
        "benchmarks/{scale}/{fit}/train.tsv"
    localrule: True
    threads: 1
    conda:
        "../envs/claimcheck.yaml"
    shell:
        "python -m workflow.launch train --config {params.config:q} --out {params.outdir:q}"
        " --copy-of {params.src:q} --label {params.label:q} --attempt={params.attempt:q} > {log:q} 2>&1"
