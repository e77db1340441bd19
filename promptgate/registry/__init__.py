"""MLflow Prompt Registry: what the default branch holds, one prompt version per merged change.

    prompts/summarize.txt  ->  prompt `prompts.summarize.txt`, version N, alias `production` -> N

After a push to the default branch has been gated, each added, modified or renamed prompt's
candidate text becomes a new version of the prompt named after its repository path
(`prompt_name`), tagged with the commit, the gate run and the verdicts, and the `production`
alias moves to it: `mlflow.genai.load_prompt("prompts:/prompts.summarize.txt@production")`
then serves what was merged. Nothing is ever deleted: a deleted prompt keeps its versions and
alias and is tagged `promptgate.deleted_in`; a renamed one's old name is tagged
`promptgate.renamed_to`.

Registration is idempotent: when the latest version already holds the same template (and model
settings) no version is made, and the alias is set to that version again. A run for a commit
older than the one behind the latest version (a re-run of an old job) changes nothing.

The store is the gate's tracking store, as `promptgate.mlflow_store` resolves it. Only
`MlflowClient` is used, so no tracking URI or active run is left behind; the MLflow settings
read from the environment are changed only for the duration of a call. A failure is a warning
unless `mlflow.required` is set (DESIGN.md "Exit codes").

names.py: prompt names and tags; model.py: what the commands return; register.py: recording
what was merged; link.py: gate runs linked to the versions they ran; read.py: listing what is
registered; show.py: printing it.
"""
