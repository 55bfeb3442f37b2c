rule report:
    # a local rule: on a cluster it runs where Snakemake runs (the login node), not as a job: it takes
    # seconds, and a cluster job would add a queue wait, a status poll and two Snakemake starts
    localrule: True
    input:
        verdicts="results/{scale}/{paper}/verdicts.json",
        runs="results/{scale}/{paper}/runs.json",
    output:
        html=report(
            "reports/{scale}/{paper}/index.html",
            category="{paper}",
            labels={"paper": "{paper}", "scale": "{scale}", "file": "report"},
        ),
        md="reports/{scale}/{paper}/report.md",
        verdicts="reports/{scale}/{paper}/verdicts.json",
        csv="reports/{scale}/{paper}/claims.csv",
        figures=directory("reports/{scale}/{paper}/figures"),
    params:
        outdir="reports/{scale}/{paper}",
        ui=config.get("tracking_ui", "http://127.0.0.1:5000"),
    conda:
        "../envs/claimcheck.yaml"
    log:
        "logs/{scale}/{paper}/report.log",
    benchmark:
        "benchmarks/{scale}/{paper}/report.tsv"
    shell:
        "python -m workflow.launch report paper --verdicts {input.verdicts:q} --runs {input.runs:q}"
        " --out-dir {params.outdir:q} --ui {params.ui:q} > {log:q} 2>&1"
        " && python -m workflow.launch tracking report --runs {input.runs:q} --verdicts {input.verdicts:q}"
        " --dir {params.outdir:q} >> {log:q} 2>&1"


rule report_index:
    # a local rule: on a cluster it runs where Snakemake runs (the login node), not as a job: it takes
    # seconds, and a cluster job would add a queue wait, a status poll and two Snakemake starts
    localrule: True
    input:
        selected_verdicts,
    output:
        html=report(
            "reports/{scale}/index.html",
            category="index",
            labels={"scale": "{scale}", "file": "index"},
        ),
        csv="reports/{scale}/claims.csv",
    conda:
        "../envs/claimcheck.yaml"
    log:
        "logs/{scale}/report_index.log",
    benchmark:
        "benchmarks/{scale}/report_index.tsv"
    shell:
        "python -m workflow.launch report index --scale {wildcards.scale} --out {output.html:q} {input:q} > {log:q} 2>&1"


# A target per catalogue entry: `snakemake --cores all <paper id>`.
for _pid in PAPERS:

    rule:
        name:
            _pid
        localrule: True
        input:
            f"reports/{SCALE}/{_pid}/index.html",
