"""datatrove's MinHash dedup on a planted corpus, as its README runs it: four local stages.

Run by ``bench.dedup_bench`` (part ``datatrove``) with the interpreter of a venv of its own
(datatrove needs huggingface-hub >= 1.6, which the test extras do not promise to accept), so
this file imports only datatrove and the standard library.

    python bench/datatrove_run.py CORPUS.parquet WORK_DIR

One task and one worker per stage (the per-core figure); 14 buckets x 9 hashes, the bands and
rows ``DedupConfig`` derives for threshold 0.7 at 128 permutations (datatrove's default is
14 x 8), 5-word n-grams, everything else datatrove's default (its English word tokenizer,
spaCy; its text normalisation; 64-bit hashes). The compared text is what ``Deduplicate``
compares by default: definition, input and output. datatrove keeps one document per cluster
and writes the others to ``WORK_DIR/removed``, each with its cluster id; the survivors go to
``WORK_DIR/kept``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupSignature
from datatrove.pipeline.dedup.minhash import (
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
)
from datatrove.pipeline.readers import ParquetReader
from datatrove.pipeline.writers import JsonlWriter

FIELDS = ("definition", "input", "output")


def adapter(self, data: dict, path: str, id_in_file):
    text = "\n".join(data[f] for f in FIELDS if data.get(f))
    return {"text": text, "id": data["id"], "metadata": {}}


def main(corpus: Path, work: Path) -> None:
    config = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=9)

    def reader():
        return ParquetReader(str(corpus.parent), glob_pattern=corpus.name, adapter=adapter)

    def run(name, pipeline, tasks=1):
        LocalPipelineExecutor(
            pipeline=pipeline, tasks=tasks, workers=1, logging_dir=str(work / "logs" / name)
        ).run()

    run("signatures", [reader(), MinhashDedupSignature(str(work / "signatures"), config=config)])
    run(
        "buckets",
        [MinhashDedupBuckets(str(work / "signatures"), str(work / "buckets"), config=config)],
        tasks=config.num_buckets,
    )
    run(
        "clusters",
        [
            MinhashDedupCluster(
                str(work / "buckets"), str(work / "remove_ids"), config=config, save_cluster_id=True
            )
        ],
    )
    run(
        "filter",
        [
            reader(),
            MinhashDedupFilter(
                str(work / "remove_ids"),
                exclusion_writer=JsonlWriter(str(work / "removed")),
                load_cluster_ids=True,
            ),
            JsonlWriter(str(work / "kept")),
        ],
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
