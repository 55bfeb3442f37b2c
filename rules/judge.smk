rule judge:
    # a local rule: on a cluster it runs where Snakemake runs (the login node), not as a job: it takes
    # seconds, and a cluster job would add a queue wait, a status poll and two Snakemake starts
    localrule: True
    input:
        evals=paper_evals,
        runs="results/{scale}/{paper}/runs.json",
    output:
        "results/{scale}/{paper}/verdicts.json",
    params:
        paper=paper_file,
        claims=paper_claims,
    log:
        "logs/{scale}/{paper}/judge.log",
    benchmark:
        "benchmarks/{scale}/{paper}/judge.tsv"
    shell:
        "python -m workflow.run judge --paper {params.paper:q} --scale {wildcards.scale}"
        " --runs {input.runs:q} --out {output:q} > {log:q} 2>&1"
