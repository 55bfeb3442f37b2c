# One MLflow logging step per paper and scale: jobs write files, this logs them in one process.
rule track:
    # a local rule: on a cluster it runs where Snakemake runs (the login node), not as a job: it takes
    # seconds, and a cluster job would add a queue wait, a status poll and two Snakemake starts
    localrule: True
    input:
        paper_evals,
    output:
        "results/{scale}/{paper}/runs.json",
    params:
        paper=paper_file,
        uri=config["tracking_uri"],
    conda:
        "../envs/claimcheck.yaml"
    log:
        "logs/{scale}/{paper}/track.log",
    benchmark:
        "benchmarks/{scale}/{paper}/track.tsv"
    shell:
        "python -m workflow.launch tracking log --paper {params.paper:q} --scale {wildcards.scale}"
        " --uri {params.uri:q} --out {output:q} > {log:q} 2>&1"
