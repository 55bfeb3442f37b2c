rule judge:
    # a local rule: on a cluster it runs where Snakemake runs (the login node), not as a job: it takes
    # seconds, and a cluster job would add a queue wait, a status poll and two Snakemake starts
    localrule: True
    input:
        # result files only: verdicts never wait for MLflow (the report joins them with run ids)
        evals=paper_evals,
    output:
        "results/{scale}/{paper}/verdicts.json",
    params:
        paper=paper_file,
        # not read by the command: the claims, tables and paper metadata as a parameter, so that
        # Snakemake's params trigger re-judges a paper when they change (its experiments are the
        # evaluations' inputs already)
        claims=paper_claims,
    conda:
        "../envs/claimcheck.yaml"
    log:
        "logs/{scale}/{paper}/judge.log",
    benchmark:
        "benchmarks/{scale}/{paper}/judge.tsv"
    shell:
        "python -m workflow.launch judge --paper {params.paper:q} --scale {wildcards.scale}"
        " --out {output:q} > {log:q} 2>&1"
